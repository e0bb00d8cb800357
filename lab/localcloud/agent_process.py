"""Start and stop the metrics and alarm agent (lab.localcloud.agent) as a background process."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from lab.localcloud.engine import REPO_ROOT, EngineInfo, aws_env, process_runs, terminate_process_group
from lab.localcloud.state import CloudDir

AGENT_STARTUP_TIMEOUT_SECONDS = 20.0
AGENT_MODULE = "lab.localcloud.agent"


def _read_pid(state: CloudDir) -> int | None:
    try:
        return int(state.agent_pid.read_text().strip())
    except (OSError, ValueError):
        return None


def agent_running(state: CloudDir) -> bool:
    pid = _read_pid(state)
    return pid is not None and process_runs(pid, AGENT_MODULE)


def start_agent(
    state: CloudDir, info: EngineInfo, *, account: str | None = None, engine_json: Path | None = None
) -> int:
    """Start the agent for this state dir (restarted, so it reads the freshly deployed alarms).

    account: the account whose queues, logs and alarms it watches (default: the engine's own);
    engine_json: the engine's record when the engine was started under another state dir."""
    stop_agent(state)
    state.agent_status.unlink(missing_ok=True)
    # Only the engine's test credentials: a session token or profile in the caller's environment
    # would be sent along and rejected.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | aws_env(info.endpoint_url)
    with state.agent_log.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed argv: this interpreter and module
            [
                sys.executable,
                "-m",
                AGENT_MODULE,
                "--state-dir",
                str(state.root),
                *(["--account", account] if account else []),
                *(["--engine-json", str(engine_json)] if engine_json else []),
            ],
            env=env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    state.agent_pid.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + AGENT_STARTUP_TIMEOUT_SECONDS
    # The agent writes its status file after its first full cycle: then every alarm has been
    # evaluated once and callers may rely on alarm states.
    while not state.agent_status.exists():
        if process.poll() is not None:
            raise RuntimeError(
                f"the metrics/alarm agent exited with {process.returncode}; see {state.agent_log}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"the metrics/alarm agent did not report within 20 s; see {state.agent_log}")
        time.sleep(0.1)
    return process.pid


def stop_agent(state: CloudDir) -> bool:
    pid = _read_pid(state)
    running = agent_running(state)
    if pid is not None and running:
        terminate_process_group(pid, 5.0)
        with contextlib.suppress(ChildProcessError):  # not our child: nothing to reap
            os.waitpid(pid, 0)
    state.agent_pid.unlink(missing_ok=True)
    return running
