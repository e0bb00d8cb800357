"""A local CodeBuild build: a buildspec's phases run in one shell on this machine, with CodeBuild's
phase transitions, environment and timeout (the engine stores projects but cannot run builds
without Docker).

What is kept from CodeBuild (CodeBuild User Guide, "Build specification reference" and "Build phase
transitions"): buildspec 0.2 runs every command in one shell instance, so directory changes and
exported variables carry over; a failed command ends its phase's commands, the phase's `finally`
commands still run; a failed INSTALL or PRE_BUILD ends the build, a failed BUILD still runs
POST_BUILD with CODEBUILD_BUILD_SUCCEEDING=0; the build is stopped at the project's timeout. What
differs: no container (the machine's Python and Node.js stand for the image's runtime-versions), and
the primary input artifact is a folder rather than a zip.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.localcloud.codepipeline.model import DeclarationError

PHASES = ("install", "pre_build", "build", "post_build")
# A failure in these phases skips the phases after them (the build goes to FINALIZING).
PHASES_THAT_END_THE_BUILD = ("install", "pre_build")
SUCCEEDED, FAILED, TIMED_OUT, STOPPED = "SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"
# The shell line that reports a phase's result, parsed back into BuildResult.phases.
PHASE_MARKER = "[Container] Phase complete:"
KILL_GRACE_S = 5.0


@dataclass(frozen=True)
class BuildResult:
    status: str
    phases: dict[str, str]
    seconds: float
    log: Path
    reason: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED


@dataclass
class BuildRequest:
    """One build: the buildspec, where its primary source is, its environment and time limit."""

    buildspec: Mapping[str, Any]
    source_dir: Path
    environment: dict[str, str]
    timeout_s: float
    log: Path
    shell: str = "bash"
    stop: threading.Event = field(default_factory=threading.Event)


def refuse_unsupported(buildspec: Mapping[str, Any]) -> None:
    """Fail before running on a buildspec feature this local CodeBuild does not implement, rather
    than run without it."""
    if str(buildspec.get("version")) not in ("0.2", "0.2.0"):
        raise DeclarationError(f"buildspec version {buildspec.get('version')!r}: only 0.2 is supported")
    env = buildspec.get("env") or {}
    for key in ("parameter-store", "secrets-manager", "exported-variables", "git-credential-helper"):
        if key in env:
            raise DeclarationError(f"buildspec env.{key} is not supported by the local CodeBuild")
    for phase in (buildspec.get("phases") or {}).values():
        if phase and ("run-as" in phase or "on-failure" in phase):
            raise DeclarationError("buildspec run-as / on-failure are not supported by the local CodeBuild")


def phase_script(buildspec: Mapping[str, Any]) -> str:
    """The shell script that runs the buildspec's phases with CodeBuild's transitions."""
    lines = [
        "__build_ok=1",
        "__stop=0",
        "export CODEBUILD_BUILD_SUCCEEDING=1",
        '__run() { printf "[Container] Running command %s\\n" "$1"; eval "$1"; }',
    ]
    phases = buildspec.get("phases") or {}
    for name in PHASES:
        phase = phases.get(name) or {}
        commands = [str(c) for c in phase.get("commands") or []]
        finally_commands = [str(c) for c in phase.get("finally") or []]
        if not commands and not finally_commands:
            continue
        lines.append('if [ "$__stop" = 0 ]; then')
        lines.append(f'  printf "[Container] Entering phase {name.upper()}\\n"; __phase_ok=1')
        lines.extend(
            f'  if [ "$__phase_ok" = 1 ]; then __run {shlex.quote(c)} || __phase_ok=0; fi' for c in commands
        )
        lines.extend(f"  __run {shlex.quote(c)} || __phase_ok=0" for c in finally_commands)
        lines.append(
            '  if [ "$__phase_ok" = 1 ]; then __state=SUCCEEDED; else __state=FAILED; __build_ok=0; fi'
        )
        lines.append(f'  printf "{PHASE_MARKER} {name.upper()} State: %s\\n" "$__state"')
        if name in PHASES_THAT_END_THE_BUILD:
            lines.append('  if [ "$__phase_ok" = 0 ]; then __stop=1; fi')
        else:
            lines.append('  if [ "$__phase_ok" = 0 ]; then export CODEBUILD_BUILD_SUCCEEDING=0; fi')
        lines.append("fi")
    lines.append('if [ "$__build_ok" = 1 ]; then exit 0; else exit 1; fi')
    return "\n".join(lines) + "\n"


def _phases_from_log(log: Path) -> dict[str, str]:
    phases: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(PHASE_MARKER):
                name, _, state = line.removeprefix(PHASE_MARKER).strip().partition(" State: ")
                phases[name.lower()] = state.strip()
    return phases


def run_build(request: BuildRequest) -> BuildResult:
    """Run the build to its end, its timeout or request.stop; the log gets every line."""
    refuse_unsupported(request.buildspec)
    variables = {
        str(k): str(v) for k, v in ((request.buildspec.get("env") or {}).get("variables") or {}).items()
    }
    env = {**request.environment, **variables}
    script = request.log.with_suffix(".sh")
    script.write_text(phase_script(request.buildspec), encoding="utf-8")
    started = time.monotonic()
    with request.log.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - the generated script runs the project's own buildspec
            [request.shell, str(script)],
            cwd=request.source_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        status, reason = _wait(process, request, started)
    seconds = time.monotonic() - started
    phases = _phases_from_log(request.log)
    with request.log.open("a", encoding="utf-8") as log_text:
        log_text.write(f"[Container] Build {status} after {seconds:.1f} s{': ' + reason if reason else ''}\n")
    return BuildResult(status=status, phases=phases, seconds=seconds, log=request.log, reason=reason)


def _wait(process: subprocess.Popen[bytes], request: BuildRequest, started: float) -> tuple[str, str]:
    deadline = started + request.timeout_s
    while True:
        try:
            code = process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                _kill(process)
                minutes = request.timeout_s / 60
                return TIMED_OUT, f"the build exceeded the project's timeout ({minutes:g} minutes)"
            if request.stop.is_set():
                _kill(process)
                return STOPPED, "stopped"
            continue
        return (SUCCEEDED, "") if code == 0 else (FAILED, f"a command exited with a non-zero status ({code})")


def _kill(process: subprocess.Popen[bytes]) -> None:
    """The whole process group: a build's commands start their own children (Locust, the CDK CLI)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def collect_artifacts(buildspec: Mapping[str, Any], source_dir: Path, destination: Path) -> int:
    """The buildspec's `artifacts` (base-directory, files globs) copied into the output artifact's
    folder, paths kept; the number of files copied."""
    artifacts = buildspec.get("artifacts") or {}
    base = source_dir / str(artifacts.get("base-directory") or ".")
    patterns: Sequence[str] = artifacts.get("files") or []
    if isinstance(patterns, str):
        patterns = [patterns]
    copied = 0
    for pattern in patterns:
        for match in glob.glob(str(pattern), root_dir=base, recursive=True):
            path = base / match
            if path.is_file():
                target = destination / match
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
                copied += 1
    if patterns and copied == 0:
        raise DeclarationError(f"the build produced no artifact files in {base} matching {list(patterns)}")
    return copied
