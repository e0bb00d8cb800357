"""Start, find and stop the dashboard page's server as a background process of one local cloud (its
record and log beside the engine's, in the cloud's folder)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from lab.localcloud.dashboard.timerange import url_query
from lab.localcloud.engine import (
    REPO_ROOT,
    EngineInfo,
    free_port,
    process_runs,
    terminate_process_group,
)
from lab.localcloud.state import CloudDir

MODULE = "lab.localcloud.dashboard"
STARTUP_TIMEOUT_S = 15.0
UPLOT_FILE = REPO_ROOT / "node_modules" / "uplot" / "dist" / "uPlot.iife.min.js"


class DashboardError(RuntimeError):
    """The page's server could not be started."""


@dataclass(frozen=True)
class DashboardInfo:
    """A running page server, as recorded in the cloud folder's dashboard.json."""

    pid: int
    port: int
    dashboard: str
    endpoint_url: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def url_for(self, start: str, end: str | None = None) -> str:
        """The page showing `start` (-PT15M) or the window start..end (ISO 8601)."""
        return f"{self.url}?{url_query(start, end)}"


def record_file(state: CloudDir) -> Path:
    return state.root / "dashboard.json"


def log_file(state: CloudDir) -> Path:
    return state.root / "dashboard.log"


def read_dashboard(state: CloudDir) -> DashboardInfo | None:
    """The page server recorded for this cloud, if its process is still alive."""
    try:
        info = DashboardInfo(**json.loads(record_file(state).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return info if process_runs(info.pid, MODULE) else None


def ensure_chart_library(log=print) -> None:
    """uPlot, pinned by package-lock.json, is installed with the CDK CLI by `npm ci`."""
    if not UPLOT_FILE.is_file():
        log("installing the pinned npm packages (npm ci): uPlot for the dashboard page")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=REPO_ROOT, check=True)  # noqa: S607 - npm from PATH


def start_dashboard(
    state: CloudDir, info: EngineInfo, *, dashboard: str, port: int | None = None, log=print
) -> DashboardInfo:
    """The page server of `dashboard` on this engine: the running one when it serves exactly that,
    else a new one (on `port`, or a free one) once it answers."""
    running = read_dashboard(state)
    same = running and running.dashboard == dashboard and running.endpoint_url == info.endpoint_url
    if running and same and port in (None, running.port) and _healthy(running):
        return running
    stop_dashboard(state)
    ensure_chart_library(log)
    chosen = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with log_file(state).open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - this interpreter and module, arguments built here
            [
                sys.executable,
                "-m",
                MODULE,
                "--endpoint-url",
                info.endpoint_url,
                "--dashboard",
                dashboard,
                "--port",
                str(chosen),
            ],
            env=env,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    started = DashboardInfo(pid=process.pid, port=chosen, dashboard=dashboard, endpoint_url=info.endpoint_url)
    record_file(state).write_text(json.dumps(asdict(started)) + "\n")
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not _healthy(started):
        if process.poll() is not None:
            record_file(state).unlink(missing_ok=True)
            raise DashboardError(
                f"the dashboard server exited with {process.returncode}; see {log_file(state)}"
            )
        if time.monotonic() > deadline:
            stop_dashboard(state)
            raise DashboardError(f"the dashboard server did not answer within 15 s; see {log_file(state)}")
        time.sleep(0.1)
    return started


def stop_dashboard(state: CloudDir) -> bool:
    """Stop the recorded page server; True when one was running."""
    running = read_dashboard(state)
    if running is not None:
        terminate_process_group(running.pid, 5.0)
        with contextlib.suppress(ChildProcessError):  # not our child: nothing to reap
            os.waitpid(running.pid, 0)
    record_file(state).unlink(missing_ok=True)
    return running is not None


def _healthy(info: DashboardInfo) -> bool:
    try:
        with urllib.request.urlopen(info.url + "healthz", timeout=1.0) as response:  # noqa: S310 - loopback URL built here
            return bool(json.load(response).get("dashboard") == info.dashboard)
    except (urllib.error.URLError, OSError, ValueError):
        return False
