"""Executions of one local pipeline, kept on disk so that several processes share them: the executor
that runs an execution, followers that print its progress, and the commands that approve, reject or
stop it.

Statuses are CodePipeline's (API Reference, PipelineExecution status: InProgress, Stopping, Stopped,
Succeeded, Superseded, Failed; ActionExecution status: InProgress, Abandoned, Succeeded, Failed).
Stage locks follow the SUPERSEDED execution mode (CodePipeline User Guide, "How pipeline executions
work"): a stage processes one execution at a time, an execution waits for a locked stage, and a
waiting execution is superseded by a more recent one that arrives at the same stage.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

IN_PROGRESS, SUCCEEDED, FAILED = "InProgress", "Succeeded", "Failed"
STOPPING, STOPPED, SUPERSEDED, ABANDONED = "Stopping", "Stopped", "Superseded", "Abandoned"
WAITING = "Waiting"  # an approval action waiting for its answer (CodePipeline shows InProgress)
APPROVED, REJECTED = "Approved", "Rejected"
FINISHED = (SUCCEEDED, FAILED, STOPPED, SUPERSEDED)


def now() -> float:
    return time.time()


def iso(moment: float | None) -> str | None:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds") if moment else None


@dataclass
class Link:
    label: str
    path: str


@dataclass
class ActionRecord:
    stage: str
    name: str
    category: str
    provider: str
    run_order: int
    status: str = "NotStarted"
    started_at: float | None = None
    ended_at: float | None = None
    summary: str = ""
    error: str = ""
    log: str | None = None
    links: list[Link] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        return (self.ended_at - self.started_at) if self.started_at and self.ended_at else None


@dataclass
class StageRecord:
    name: str
    status: str = "NotStarted"
    started_at: float | None = None
    ended_at: float | None = None
    waited_s: float = 0.0


@dataclass
class ExecutionRecord:
    """One execution: what started it, what it runs, and where each stage and action stands."""

    id: str
    pipeline: str
    pipeline_version: int
    trigger: dict[str, str]
    revision: dict[str, str]
    started_at: float
    status: str = IN_PROGRESS
    status_reason: str = ""
    ended_at: float | None = None
    pid: int | None = None
    stages: list[StageRecord] = field(default_factory=list)
    actions: list[ActionRecord] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def seconds(self) -> float:
        return (self.ended_at or now()) - self.started_at

    def stage(self, name: str) -> StageRecord:
        return next(s for s in self.stages if s.name == name)

    def action(self, stage: str, name: str) -> ActionRecord:
        return next(a for a in self.actions if a.stage == stage and a.name == name)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExecutionRecord:
        stages = [StageRecord(**s) for s in data.pop("stages", [])]
        actions = []
        for raw in data.pop("actions", []):
            links = [Link(**link) for link in raw.pop("links", [])]
            actions.append(ActionRecord(**raw, links=links))
        return cls(**data, stages=stages, actions=actions)


def new_execution_id() -> str:
    """Readable and sortable by start time (CodePipeline's are UUIDs)."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


class PipelineHome:
    """The folder of one local pipeline: executions, their work folders, locks, answers to approvals."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def ensure(self) -> PipelineHome:
        for folder in (self.executions_dir, self.locks_dir, self.answers_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def executions_dir(self) -> Path:
        return self.root / "executions"

    @property
    def locks_dir(self) -> Path:
        return self.root / "locks"

    @property
    def answers_dir(self) -> Path:
        return self.root / "answers"

    def record_path(self, execution_id: str) -> Path:
        return self.executions_dir / f"{execution_id}.json"

    def work_dir(self, execution_id: str) -> Path:
        return self.executions_dir / execution_id

    def events_path(self, execution_id: str) -> Path:
        return self.executions_dir / f"{execution_id}.events.jsonl"

    # --- records ------------------------------------------------------------------------------
    def save(self, record: ExecutionRecord) -> None:
        path = self.record_path(record.id)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(path)

    def load(self, execution_id: str) -> ExecutionRecord:
        path = self.record_path(execution_id)
        if not path.exists():
            raise KeyError(f"no execution {execution_id} in {self.executions_dir}")
        return ExecutionRecord.from_json(json.loads(path.read_text(encoding="utf-8")))

    def executions(self) -> list[ExecutionRecord]:
        """Every execution, oldest first."""
        records = [
            self.load(path.stem)
            for path in self.executions_dir.glob("*.json")
            if not path.name.endswith(".events.json")
        ]
        return sorted(records, key=lambda r: r.started_at)

    def latest(self) -> ExecutionRecord | None:
        records = self.executions()
        return records[-1] if records else None

    # --- events for followers -----------------------------------------------------------------
    def event(self, execution_id: str, **fields: Any) -> None:
        line = json.dumps({"at": now(), **fields}, sort_keys=True)
        with self.events_path(execution_id).open("a", encoding="utf-8") as events:
            events.write(line + "\n")

    def read_events(self, execution_id: str, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Events after byte `offset`, and the offset to read from next time."""
        path = self.events_path(execution_id)
        if not path.exists():
            return [], offset
        with path.open("rb") as events:
            events.seek(offset)
            data = events.read()
        complete = data[: data.rfind(b"\n") + 1]
        lines = [json.loads(line) for line in complete.decode("utf-8").splitlines() if line.strip()]
        return lines, offset + len(complete)

    # --- answers: approvals and stop requests -------------------------------------------------
    def answer_path(self, execution_id: str, kind: str) -> Path:
        return self.answers_dir / f"{execution_id}.{kind}.json"

    def answer(self, execution_id: str, kind: str, **fields: Any) -> None:
        path = self.answer_path(execution_id, kind)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"at": now(), **fields}, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(path)

    def read_answer(self, execution_id: str, kind: str) -> dict[str, Any] | None:
        path = self.answer_path(execution_id, kind)
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    # --- stage locks (SUPERSEDED mode) --------------------------------------------------------
    @contextlib.contextmanager
    def _mutex(self) -> Iterator[None]:
        with (self.locks_dir / ".mutex").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _waiting_path(self, stage: str) -> Path:
        return self.locks_dir / f"{stage}.waiting.json"

    def waiting_for(self, stage: str) -> dict[str, Any] | None:
        path = self._waiting_path(stage)
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def try_enter(self, stage: str, record: ExecutionRecord) -> IO[str] | bool | None:
        """The stage's lock (an open handle to keep) when this execution may enter now; None to keep
        waiting; False when a more recent execution waits for the same stage (superseded)."""
        with self._mutex():
            waiting = self.waiting_for(stage)
            if waiting and waiting["id"] != record.id and waiting["startedAt"] > record.started_at:
                return False
            handle = (self.locks_dir / f"{stage}.lock").open("a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                if not waiting or waiting["startedAt"] <= record.started_at:
                    self._waiting_path(stage).write_text(
                        json.dumps({"id": record.id, "startedAt": record.started_at}), encoding="utf-8"
                    )
                return None
            if waiting and waiting["id"] == record.id:
                self._waiting_path(stage).unlink(missing_ok=True)
            return handle

    def holder_of(self, stage: str) -> ExecutionRecord | None:
        """The in-progress execution inside `stage`, for "waiting for" messages."""
        for record in reversed(self.executions()):
            if not record.finished and any(
                s.name == stage and s.status == IN_PROGRESS for s in record.stages
            ):
                return record
        return None

    @staticmethod
    def leave(handle: IO[str]) -> None:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
