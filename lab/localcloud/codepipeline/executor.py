"""Runs one execution of a pipeline stored by the engine: its stages in order (each entered under the
stage lock of SUPERSEDED mode), each stage's actions by run order (a run order's actions in
parallel), until the last stage succeeds, an action fails, it is stopped or superseded.

Self-mutation: when an action updates the pipeline itself (CDK Pipelines' UpdatePipeline deploys the
pipeline stack), CodePipeline restarts the pipeline on its new definition if RestartExecutionOnUpdate
is set (CloudFormation Template Reference, AWS::CodePipeline::Pipeline); the running execution ends
superseded and `on_restart` starts the new one. A CodeBuild project updated without a change to the
pipeline resource takes effect for the next build, as on AWS (builds read their project when they start).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from lab.localcloud.codepipeline.actions import ActionContext, Outcome, Runtime, run_action
from lab.localcloud.codepipeline.execution import (
    ABANDONED,
    FAILED,
    IN_PROGRESS,
    STOPPED,
    SUCCEEDED,
    SUPERSEDED,
    WAITING,
    ActionRecord,
    ExecutionRecord,
    PipelineHome,
    StageRecord,
    new_execution_id,
    now,
)
from lab.localcloud.codepipeline.model import Action, Pipeline, Stage
from lab.localcloud.codepipeline.sessions import Session
from lab.localcloud.engine_patches.pipeline_store import StoredPipeline, read_pipeline

# Executions whose work folders (workspaces, artifacts) are kept; older ones are pruned.
KEEP_WORK_OF = 3
TRIGGER_PUSH, TRIGGER_RESTART, TRIGGER_MANUAL = "Push", "PipelineUpdated", "StartPipelineExecution"


class PipelineMissing(RuntimeError):
    """The engine holds no such pipeline (not deployed, or the engine was restarted)."""


@dataclass(frozen=True)
class PipelineRef:
    """Which stored pipeline: the engine's CodePipeline folder, account, region and name."""

    store: Path
    account: str
    region: str
    name: str

    def read(self) -> StoredPipeline:
        stored = read_pipeline(self.store, self.account, self.region, self.name)
        if stored is None:
            raise PipelineMissing(
                f"no pipeline {self.name} in account {self.account} ({self.region}) on this engine: deploy "
                "its stack first"
            )
        return stored


def start_execution(
    home: PipelineHome, ref: PipelineRef, revision: dict[str, str], trigger: dict[str, str]
) -> ExecutionRecord:
    """A new execution record, on the pipeline as stored now (it runs with `run_execution`)."""
    stored = ref.read()
    pipeline = Pipeline.from_declaration(stored.declaration)
    record = ExecutionRecord(
        id=new_execution_id(),
        pipeline=ref.name,
        pipeline_version=stored.version,
        trigger=trigger,
        revision=revision,
        started_at=now(),
        stages=[StageRecord(stage.name) for stage in pipeline.stages],
        actions=[
            ActionRecord(stage.name, action.name, action.category, action.provider, action.run_order)
            for stage, action in pipeline.actions()
        ],
    )
    home.ensure().save(record)
    home.event(
        record.id, kind="execution", status=IN_PROGRESS, message=f"started ({trigger.get('detail', '')})"
    )
    _prune(home, keep=record.id)
    return record


def _prune(home: PipelineHome, keep: str) -> None:
    finished = [r for r in home.executions() if r.finished and r.id != keep]
    for record in finished[:-KEEP_WORK_OF]:
        shutil.rmtree(home.work_dir(record.id), ignore_errors=True)


@dataclass
class ExecutionRun:
    """One execution being run: its record, pipeline, artifacts and variables so far."""

    home: PipelineHome
    ref: PipelineRef
    runtime: Runtime
    record: ExecutionRecord
    pipeline: Pipeline
    pipeline_session: Session
    on_restart: Callable[[ExecutionRecord, StoredPipeline], None]
    artifacts: dict[str, Path] = field(default_factory=dict)
    variables: dict[str, dict[str, str]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # The pipeline as an action updated it (set when the run must restart on it).
    restart_with: StoredPipeline | None = None

    # --- record keeping ---------------------------------------------------------------------
    def save(self) -> None:
        with self.lock:
            self.home.save(self.record)

    def event(self, **fields: object) -> None:
        self.home.event(self.record.id, **fields)

    def finish(self, status: str, reason: str = "") -> ExecutionRecord:
        self.record.status = status
        self.record.status_reason = reason
        self.record.ended_at = now()
        self.save()
        self.event(kind="execution", status=status, message=reason)
        return self.record

    def stop_requested(self) -> dict[str, object] | None:
        return self.home.read_answer(self.record.id, "stop")

    # --- stages -----------------------------------------------------------------------------
    def enter(self, stage: Stage) -> IO[str] | None:
        """Wait for the stage's lock; None when superseded or stopped while waiting."""
        stage_record = self.record.stage(stage.name)
        started_waiting = time.monotonic()
        announced = False
        while True:
            handle = self.home.try_enter(stage.name, self.record)
            if handle is False:
                return None
            if handle is not None and handle is not True:
                stage_record.waited_s = round(time.monotonic() - started_waiting, 1)
                return handle
            if self.stop_requested():
                return None
            if not announced:
                holder = self.home.holder_of(stage.name)
                self.event(
                    kind="stage",
                    stage=stage.name,
                    status="Waiting",
                    message=f"locked by {holder.id if holder else '?'}",
                )
                announced = True
            time.sleep(self.runtime.poll_s)

    def run_stage(self, stage: Stage) -> str:
        """SUCCEEDED, FAILED, STOPPED or SUPERSEDED (restarted on a new pipeline definition)."""
        stage_record = self.record.stage(stage.name)
        stage_record.status, stage_record.started_at = IN_PROGRESS, now()
        self.save()
        self.event(kind="stage", stage=stage.name, status=IN_PROGRESS)
        result = SUCCEEDED
        for group in stage.run_groups():
            if self.stop_requested():
                result = STOPPED
                break
            outcomes = self.run_group(stage, group)
            if any(o.status == STOPPED for o in outcomes):
                result = STOPPED
                break
            if any(o.status != SUCCEEDED for o in outcomes):
                result = FAILED
                break
            if self.pipeline_updated():
                result = SUPERSEDED
                break
        for action in self.record.actions:
            if action.stage == stage.name and action.status == "NotStarted" and result != SUCCEEDED:
                action.status = ABANDONED if result == STOPPED else "Didn't run"
        stage_record.status = SUCCEEDED if result == SUPERSEDED else result
        stage_record.ended_at = now()
        self.save()
        self.event(kind="stage", stage=stage.name, status=stage_record.status)
        return result

    def pipeline_updated(self) -> bool:
        """Did an action just update the pipeline resource (with RestartExecutionOnUpdate)?"""
        stored = self.ref.read()
        if stored.version == self.record.pipeline_version or not self.pipeline.restart_on_update:
            return False
        self.restart_with = stored
        return True

    # --- actions ----------------------------------------------------------------------------
    def run_group(self, stage: Stage, group: list[Action]) -> list[Outcome]:
        done = threading.Event()
        watcher = threading.Thread(target=self._watch_stop, args=(done,), daemon=True)
        watcher.start()
        try:
            with ThreadPoolExecutor(max_workers=len(group)) as pool:
                return list(pool.map(lambda action: self.run_one(stage, action), group))
        finally:
            done.set()

    def _watch_stop(self, done: threading.Event) -> None:
        """A "stop and abandon" request stops the running builds and approvals at once."""
        while not done.wait(self.runtime.poll_s):
            answer = self.stop_requested()
            if answer and answer.get("abandon"):
                self.stop.set()
                return

    def run_one(self, stage: Stage, action: Action) -> Outcome:
        entry = self.record.action(stage.name, action.name)
        entry.status, entry.started_at = IN_PROGRESS, now()
        self.save()
        self.event(kind="action", stage=stage.name, action=action.name, status=IN_PROGRESS)
        ctx = ActionContext(
            runtime=self.runtime,
            home=self.home,
            record=self.record,
            pipeline=self.pipeline,
            stage=stage,
            action=action,
            artifacts=self.artifacts,
            variables=self.variables,
            pipeline_session=self.pipeline_session,
            stop=self.stop,
        )
        entry.log = str(ctx.log.relative_to(self.home.root))

        def waiting() -> None:
            entry.status = WAITING
            self.save()
            self.event(
                kind="action",
                stage=stage.name,
                action=action.name,
                status=WAITING,
                message="approve or reject",
            )

        outcome = run_action(ctx, waiting)
        if outcome.status == SUCCEEDED and action.namespace:
            with self.lock:
                self.variables[action.namespace] = outcome.variables
        entry.status = outcome.status
        entry.summary, entry.error, entry.links = outcome.summary, outcome.error, outcome.links
        entry.ended_at = now()
        self.save()
        self.event(
            kind="action",
            stage=stage.name,
            action=action.name,
            status=outcome.status,
            message=outcome.error or outcome.summary,
            seconds=round(entry.seconds or 0, 1),
        )
        return outcome


def run_execution(
    home: PipelineHome,
    ref: PipelineRef,
    runtime: Runtime,
    execution_id: str,
    on_restart: Callable[[ExecutionRecord, StoredPipeline], None],
) -> ExecutionRecord:
    """Run a started execution to its end; `on_restart(record, new pipeline)` is called when an
    action updated the pipeline and the pipeline restarts."""
    record = home.load(execution_id)
    record.pid = os.getpid()
    stored = ref.read()
    pipeline = Pipeline.from_declaration(stored.declaration)
    root = runtime.pipeline_root
    session = runtime.sessions.assume(pipeline.role_arn, root, f"codepipeline-{record.id}")
    run = ExecutionRun(home, ref, runtime, record, pipeline, session, on_restart)
    run.variables["codepipeline"] = {"PipelineExecutionId": record.id}
    run.save()
    for stage in pipeline.stages:
        handle = run.enter(stage)
        if handle is None:
            if run.stop_requested():
                return run.finish(STOPPED, "stopped while waiting for a stage")
            return run.finish(SUPERSEDED, f"a more recent execution was waiting for {stage.name}")
        try:
            result = run.run_stage(stage)
        finally:
            home.leave(handle)
        if result == SUPERSEDED and run.restart_with is not None:
            new = run.restart_with
            run.finish(SUPERSEDED, f"the pipeline was updated to version {new.version}: restarted on it")
            on_restart(run.record, new)
            return run.record
        if result == STOPPED:
            return run.finish(STOPPED, f"stopped in {stage.name}")
        if result != SUCCEEDED:
            failed = [a for a in run.record.actions if a.stage == stage.name and a.status == FAILED]
            reason = "; ".join(f"{a.name}: {a.error}" for a in failed)
            return run.finish(FAILED, f"{stage.name} failed ({reason})")
    return run.finish(SUCCEEDED)
