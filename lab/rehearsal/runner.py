"""Starting and running executions of the rehearsal's pipeline: the local CodePipeline's runtime on
this machine (builds' tools, caches, credentials), the execution process that a push starts, and what
a restart after self-mutation starts next.

An execution runs in a process of its own (`python -m lab.rehearsal execute <id>`), detached from the
push or command that started it, so that approving later, from another shell, continues it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from botocore.exceptions import ClientError

from lab.harness.cdk import QUIET_CDK
from lab.localcloud.codepipeline.actions import BuildRuntime, Runtime
from lab.localcloud.codepipeline.execution import ExecutionRecord
from lab.localcloud.codepipeline.executor import (
    TRIGGER_MANUAL,
    TRIGGER_PUSH,
    TRIGGER_RESTART,
    PipelineRef,
    run_execution,
    start_execution,
)
from lab.localcloud.codepipeline.sessions import Sessions
from lab.localcloud.engine import EngineClients, EngineInfo, read_engine
from lab.localcloud.engine_patches.pipeline_store import StoredPipeline
from lab.rehearsal.git import git
from lab.rehearsal.paths import RehearsalDir
from lab.rehearsal.setup import Setup, bootstrap_command, read_setup, refresh_smoke_token
from stage_client.target import REPO_ROOT

# Kept from each build for the run's record: the gameday's and the load test's reports.
KEPT_FROM_BUILDS = ("reports/**/*.json", "reports/**/*.html")
# Local cache of the builds (CodeBuild's local custom cache): the Python environment and mypy's
# incremental cache survive from one build to the next.
CACHE_LINKS = {".venv": "venv", ".mypy_cache": "mypy"}
_BOOTSTRAP_ROLE = re.compile(
    r"cdk-[a-z0-9]+-(?:deploy|file-publishing|image-publishing)-role-(\d{12})-([a-z0-9-]+)"
)
_REFUSED = ("AccessDenied", "not authorized", "NoSuchEntity", "does not exist", "Could not assume")
# cdk-assets names the staging bucket, not the role, when the role is gone but the bucket is not: a
# deleted CDKToolkit stack retains its bucket (the bootstrap template's DeletionPolicy Retain).
_BOOTSTRAP_BUCKET = re.compile(
    r"cdk-([a-z0-9]+)-assets-(\d{12})-([a-z0-9-]+)' exists, but we dont have access"
)


class NotSetUp(RuntimeError):
    """The local pipeline is not set up on the running engine."""


def current(rdir: RehearsalDir) -> tuple[EngineInfo, Setup]:
    info = read_engine(rdir.state)
    setup = read_setup(rdir, info)
    if info is None or setup is None:
        raise NotSetUp("the local pipeline is not set up on a running engine: run `lab pipeline init`")
    return info, setup


def pipeline_ref(rdir: RehearsalDir, setup: Setup) -> PipelineRef:
    return PipelineRef(
        rdir.state.codepipeline_dir, setup.accounts.pipeline, setup.accounts.region, setup.pipeline_name
    )


# A build inherits this machine's network, certificate and package-index settings (on AWS, the build
# image's), never the developer's AWS identity, virtualenv, git state or the lab's own settings.
_NOT_INHERITED_PREFIXES = ("AWS_", "CDK_", "LAB_", "CODEBUILD_", "JSII_", "GIT_")
_NOT_INHERITED = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PATH"}
_INHERITED_GIT = {"GIT_SSL_CAINFO"}


def _inherited_env() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if key in _INHERITED_GIT
        or (key not in _NOT_INHERITED and not key.startswith(_NOT_INHERITED_PREFIXES))
    }


def _system_path() -> str:
    """PATH without a virtualenv of the developer's shell: builds use their own Python."""
    venv = os.environ.get("VIRTUAL_ENV")
    parts = [
        p for p in os.environ.get("PATH", os.defpath).split(os.pathsep) if not venv or not p.startswith(venv)
    ]
    return os.pathsep.join(parts)


def ensure_build_python(rdir: RehearsalDir) -> Path:
    """The builds' Python (3.11, as the projects' runtime-versions ask): an empty virtualenv that the
    synth's `make venv` fills and later builds reuse."""
    python = rdir.build_venv / "bin" / "python"
    config = rdir.build_venv / "pyvenv.cfg"
    relocatable = config.exists() and "relocatable = true" in config.read_text(encoding="utf-8")
    if python.exists() and not relocatable:
        shutil.rmtree(rdir.build_venv)  # made by an earlier version of this function: not relocatable
    if not python.exists():
        # Relocatable (uv): each build reaches this virtualenv through a `.venv` link in its own
        # source folder, and an installer writes the path it was given into every script's shebang;
        # the next build's folder is another one and the old one is gone, so an absolute shebang
        # breaks (`.venv/bin/mypy: cannot execute: required file not found`). uv's relocatable
        # scripts find their interpreter from their own location. --seed: `make venv` calls its pip.
        uv = Path(sys.executable).with_name("uv")
        options = ["--quiet", "--seed", "--relocatable", "--python", sys.executable]
        subprocess.run(  # noqa: S603 - the project's pinned uv, fixed arguments
            [str(uv), "venv", *options, str(rdir.build_venv)],
            check=True,
        )
    return python


def build_runtime(rdir: RehearsalDir) -> BuildRuntime:
    ensure_build_python(rdir)
    rdir.npm_prefix.mkdir(parents=True, exist_ok=True)
    base_env = {
        **_inherited_env(),
        "PATH": _system_path(),
        "HOME": os.environ.get("HOME", str(Path.home())),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "NPM_CONFIG_PREFIX": str(rdir.npm_prefix),
        "NPM_CONFIG_UPDATE_NOTIFIER": "false",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        **QUIET_CDK,
    }
    return BuildRuntime(
        tool_paths=(rdir.npm_prefix / "bin", rdir.build_venv / "bin"),
        base_env=base_env,
        cache_links={path: rdir.cache / name for path, name in CACHE_LINKS.items()},
        keep=KEPT_FROM_BUILDS,
    )


def runtime(rdir: RehearsalDir, info: EngineInfo, setup: Setup, *, auto_approve: bool) -> Runtime:
    return Runtime(
        sessions=Sessions(info.endpoint_url, setup.accounts.region),
        pipeline_account=setup.accounts.pipeline,
        region=setup.accounts.region,
        git_dir=rdir.repository,
        build=build_runtime(rdir),
        auto_approve=auto_approve,
        explain=lambda error: bootstrap_hint(error, setup, lambda a, name: role_exists(info, a, name)),
    )


RoleExists = Callable[[str, str], bool]


def bootstrap_hint(error: str, setup: Setup, role_exists: RoleExists) -> str | None:
    """A failure that names a CDK bootstrap role that does not exist in its account: say how to
    bootstrap that account for this pipeline."""
    retained = _BOOTSTRAP_BUCKET.search(error)
    if retained:
        qualifier, account, region = retained.groups()
        role = f"cdk-{qualifier}-file-publishing-role-{account}-{region}"
        bucket = f"cdk-{qualifier}-assets-{account}-{region}"
    else:
        match = _BOOTSTRAP_ROLE.search(error)
        if not match or not any(marker in error for marker in _REFUSED):
            return None
        (account, region), role, bucket = match.groups(), match.group(0), ""
    if role_exists(account, role):
        return None
    trust = setup.accounts.pipeline if account != setup.accounts.pipeline else None
    command = f"cdk {' '.join(bootstrap_command(account, region, trust))}"
    hint = f"account {account} is not bootstrapped for this pipeline: run `lab pipeline init` ({command})"
    if bucket:
        hint += (
            f"; its staging bucket {bucket} outlived the deleted bootstrap stack and must be emptied and "
            "deleted first, as on AWS"
        )
    return hint


def role_exists(info: EngineInfo, account: str, role_name: str) -> bool:
    try:
        EngineClients(info, account)("iam").get_role(RoleName=role_name)
    except ClientError:
        return False
    return True


def revision_of(rdir: RehearsalDir, commit: str, branch: str) -> dict[str, str]:
    """What the source action reports of a commit of the lab remote."""
    lines = git("log", "-1", "--format=%H%n%aI%n%s", commit, git_dir=rdir.repository).splitlines()
    sha, author_date, message = [*lines, "", "", ""][:3]
    return {"commit": sha, "branch": branch, "authorDate": author_date, "message": message}


def branch_head(rdir: RehearsalDir, branch: str) -> str | None:
    return (
        git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", git_dir=rdir.repository, check=False)
        or None
    )


def start(rdir: RehearsalDir, setup: Setup, commit: str, *, trigger: str, detail: str) -> ExecutionRecord:
    revision = revision_of(rdir, commit, setup.branch)
    return start_execution(
        rdir.home, pipeline_ref(rdir, setup), revision, {"kind": trigger, "detail": detail}
    )


def spawn(rdir: RehearsalDir, execution_id: str, *, approve: bool) -> int:
    """The execution's own process, detached (its output goes to executions/<id>.out)."""
    command = [
        sys.executable,
        "-m",
        "lab.rehearsal",
        "execute",
        execution_id,
        "--state-dir",
        str(rdir.state.root),
        "--reports-dir",
        str(rdir.reports),
    ]
    if approve:
        command.append("--approve")
    with rdir.process_log(execution_id).open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - this interpreter and module
            command,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return process.pid


def execute(
    rdir: RehearsalDir, execution_id: str, *, approve: bool, on_record: Callable[[ExecutionRecord], None]
) -> ExecutionRecord:
    """Run an execution, then the ones its self-mutation restarts, each recorded by `on_record`."""
    info, setup = current(rdir)
    restarted: list[ExecutionRecord] = []

    def on_restart(record: ExecutionRecord, stored: StoredPipeline) -> None:
        if record.trigger.get("kind") == TRIGGER_RESTART and record.revision.get("commit") == branch_head(
            rdir, setup.branch
        ):
            # The same commit changed the pipeline twice: its synthesis is not deterministic, and
            # CodePipeline would restart for ever. Stop here, saying so.
            raise RuntimeError(
                f"{record.id} updated the pipeline again from the same commit (nondeterministic synth?)"
            )
        commit = branch_head(rdir, setup.branch) or record.revision["commit"]
        new = start(
            rdir,
            setup,
            commit,
            trigger=TRIGGER_RESTART,
            detail=f"{record.id} updated the pipeline to version {stored.version}",
        )
        rdir.home.event(
            record.id, kind="execution", status="Superseded", message=f"restarted as {new.id}", next=new.id
        )
        restarted.append(new)

    run = runtime(rdir, info, setup, auto_approve=approve)
    ref = pipeline_ref(rdir, setup)
    record = run_execution(rdir.home, ref, run, execution_id, on_restart)
    on_record(record)
    while restarted:
        refresh_smoke_token(info, setup)
        record = run_execution(rdir.home, ref, run, restarted.pop().id, on_restart)
        on_record(record)
    return record


__all__ = [
    "TRIGGER_MANUAL",
    "TRIGGER_PUSH",
    "TRIGGER_RESTART",
    "bootstrap_hint",
    "current",
    "execute",
    "spawn",
    "start",
]
