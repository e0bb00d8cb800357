"""The pipeline rehearsal on the session's engine: a scratch clone of the committed HEAD pushes to the
lab remote, runs are followed through their records, and answers go through `lab pipeline ...`.

These tests take minutes each (every run synthesizes the app and deploys stages): they are marked
`pipeline`, left out of `make test-local` and run by `make test-pipeline`.

LIGHT_PIPELINE is the pipeline the scenario tests run: the project's pipeline with the synth step's
developer check (lint, mypy, unit and template tests, which `make test` runs anyway) replaced by
`make venv`, and a shorter
load test; it is committed on the scratch clone and executed as synthesized, like any change to
pipeline/. The full rehearsal brings the committed pipeline back through self-mutation.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lab import cli
from lab.localcloud.codepipeline.execution import ExecutionRecord
from lab.localcloud.engine import EngineClients
from lab.rehearsal.hook import FOLLOW_ENV
from lab.rehearsal.paths import REPORTS_DIR_ENV, RehearsalDir
from lab.rehearsal.setup import Setup, init, stop_agents
from stage_client.target import REPO_ROOT, STATE_DIR_ENV
from tests.local.conftest import LocalEngine

HERE = Path(__file__).parent
DEVELOPER_CHECK_LINE = "    DEVELOPER_CHECK,\n"
SHORT_LOAD_TEST = {"runTime": "15s", "users": 4, "spawnRate": 4, "minRequests": 10}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.pipeline)


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=rehearsal", "-c", "user.email=rehearsal@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return (result.stdout + result.stderr).strip()


@dataclass
class Rehearsal:
    rdir: RehearsalDir
    repo: Path
    engine: LocalEngine
    setup: Setup
    original_head: str
    base_branch: str

    def checkout(self, branch: str) -> None:
        git(self.repo, "checkout", "-q", branch)

    def commit(self, message: str, edits: dict[str, Callable[[str], str]], branch: str | None = None) -> str:
        if branch:
            git(self.repo, "checkout", "-q", "-B", branch)
        for path, edit in edits.items():
            file = self.repo / path
            before = file.read_text()
            after = edit(before)
            assert after != before, f"the edit of {path} changed nothing"
            file.write_text(after)
        git(self.repo, "commit", "-q", "-am", message)
        return git(self.repo, "rev-parse", "HEAD")

    def push(self, ref: str = "HEAD", branch: str = "main") -> str:
        """git push to the lab remote; the hook only starts the run (the test follows it)."""
        return git(self.repo, "push", "--force", "lab", f"{ref}:refs/heads/{branch}", env={FOLLOW_ENV: "0"})

    def execution_of(self, commit: str, timeout: float = 30) -> ExecutionRecord:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in reversed(self.rdir.home.executions()):
                if record.revision.get("commit") == commit:
                    return record
            time.sleep(0.5)
        raise AssertionError(f"no execution started for {commit}")

    def wait(
        self, execution_id: str, until: Callable[[ExecutionRecord], bool], *, timeout: float, what: str
    ) -> ExecutionRecord:
        deadline = time.monotonic() + timeout
        while True:
            record = self.rdir.home.load(execution_id)
            if until(record):
                return record
            if record.finished or time.monotonic() > deadline:
                failed = [f"{a.stage}/{a.name}: {a.error}" for a in record.actions if a.error]
                raise AssertionError(
                    f"{execution_id} is {record.status} ({record.status_reason}) waiting for {what}: {failed}"
                )
            time.sleep(2)

    def waiting_for_approval(self, execution_id: str, timeout: float) -> ExecutionRecord:
        return self.wait(
            execution_id,
            lambda r: r.action("Prod", "PromoteToProd").status == "Waiting",
            timeout=timeout,
            what="the approval",
        )

    def finished(self, execution_id: str, timeout: float) -> ExecutionRecord:
        return self.wait(execution_id, lambda r: r.finished, timeout=timeout, what="the end of the run")

    def lab(self, *args: str) -> int:
        """`lab pipeline ...` in this process, on the rehearsal's state and reports dirs."""
        return cli.main(["pipeline", *args, "--reports-dir", str(self.rdir.reports)])

    def stacks(self, account: str) -> dict[str, dict[str, Any]]:
        cfn = EngineClients(self.engine.info, account)("cloudformation")
        return {
            s["StackName"]: s
            for s in cfn.describe_stacks()["Stacks"]
            if s["StackStatus"] != "DELETE_COMPLETE"
        }


def light_pipeline(repo: Path) -> dict[str, Callable[[str], str]]:
    def stack(text: str) -> str:
        # The developer check is what creates the build's .venv (its make targets depend on it): the
        # light synth step still makes the virtualenv, then runs the rest of the buildspec.
        assert DEVELOPER_CHECK_LINE in text
        return text.replace(DEVELOPER_CHECK_LINE, '    "make venv",\n')

    def cdk_json(text: str) -> str:
        data = json.loads(text)
        data["context"]["pipeline"]["load"] = SHORT_LOAD_TEST
        return json.dumps(data, indent=2) + "\n"

    return {"pipeline/stack.py": stack, "cdk.json": cdk_json}


@pytest.fixture(scope="module")
def rehearsal(
    local_engine: LocalEngine,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch_module: pytest.MonkeyPatch,
) -> Iterator[Rehearsal]:
    """A scratch clone of HEAD, the light pipeline committed on it and deployed by `init`."""
    workdir = tmp_path_factory.mktemp("rehearsal")
    repo = workdir / "repo"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(repo)], check=True)
    original_head = git(repo, "rev-parse", "HEAD")
    base_branch = git(repo, "rev-parse", "--abbrev-ref", "HEAD")
    rdir = RehearsalDir(local_engine.state, workdir / "reports")
    monkeypatch_module.setenv(STATE_DIR_ENV, str(local_engine.state.root))
    monkeypatch_module.setenv(REPORTS_DIR_ENV, str(rdir.reports))
    rehearsal = Rehearsal(rdir, repo, local_engine, None, original_head, base_branch)  # type: ignore[arg-type]
    rehearsal.commit("test: the light pipeline", light_pipeline(repo))
    rehearsal.setup = init(rdir, repo_root=repo, log=print)
    yield rehearsal
    for record in rdir.home.executions():
        if not record.finished:
            rdir.home.answer(record.id, "stop", abandon=True, by="test teardown")
    stop_agents(rdir)


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch
