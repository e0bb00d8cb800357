"""The `lab` remote's post-receive hook: a push to the branch the pipeline's source action watches
starts an execution (in a process of its own) and shows its progress; a push to another branch is
ignored, and says so.

Concurrent pushes follow CodePipeline V2's default execution mode, SUPERSEDED: every push starts an
execution, a stage runs one at a time, and an execution waiting for a stage is superseded by a more
recent one (CodePipeline User Guide, "How pipeline executions work").

The pushing shell's environment reaches the hook (a local remote): LAB_PIPELINE_APPROVE=1 approves
prod unattended, LAB_PIPELINE_FOLLOW=0 only starts the run (`lab pipeline run` follows it itself).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from lab.localcloud.codepipeline.model import Pipeline
from lab.rehearsal import runner
from lab.rehearsal.follow import Follower, Print
from lab.rehearsal.paths import RehearsalDir
from lab.rehearsal.setup import refresh_smoke_token

APPROVE_ENV = "LAB_PIPELINE_APPROVE"
FOLLOW_ENV = "LAB_PIPELINE_FOLLOW"
ZERO = "0" * 40


def flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes")


def watched_branch(rdir: RehearsalDir) -> str:
    """The branch of the deployed pipeline's source action (a self-mutation may have changed it)."""
    _info, setup = runner.current(rdir)
    declaration = runner.pipeline_ref(rdir, setup).read().declaration
    source = Pipeline.from_declaration(declaration).source_actions[0]
    return str(source.configuration.get("BranchName", setup.branch))


def on_push(rdir: RehearsalDir, updates: Iterable[str], say: Print) -> list[str]:
    """Start an execution per push to the watched branch; the ids started."""
    info, setup = runner.current(rdir)
    branch = watched_branch(rdir)
    started: list[str] = []
    for line in updates:
        parts = line.split()
        if len(parts) != 3:
            continue
        _old, new, ref = parts
        if ref != f"refs/heads/{branch}":
            say(f"lab pipeline: {ref} ignored (the pipeline watches refs/heads/{branch})")
            continue
        if new == ZERO:
            say(f"lab pipeline: {ref} deleted; nothing to run")
            continue
        refresh_smoke_token(info, setup)
        record = runner.start(
            rdir, setup, new, trigger=runner.TRIGGER_PUSH, detail=f"push of {new[:10]} to {branch}"
        )
        runner.spawn(rdir, record.id, approve=flag(APPROVE_ENV, False))
        say(
            f"lab pipeline: execution {record.id} started for {new[:10]} (SUPERSEDED mode: a newer push "
            "supersedes an execution still waiting for a stage)"
        )
        started.append(record.id)
    return started


def run_hook(rdir: RehearsalDir, updates: Iterable[str], say: Print) -> int:
    try:
        started = on_push(rdir, updates, say)
    except runner.NotSetUp as error:
        say(f"lab pipeline: {error}")
        return 0
    if started and flag(FOLLOW_ENV, True):
        record = Follower(rdir.home, say).follow(started[-1], stop_at_approval=True)
        if not record.finished:
            say(f"lab pipeline: {record.id} waits for approval (`lab pipeline approve` or `reject`)")
    return 0
