"""The local stage's dashboard page: started for the deployed stage's own dashboard (its
DashboardName output) on the running local cloud."""

from __future__ import annotations

from collections.abc import Callable

from lab.harness.paths import StateDir
from lab.localcloud import engine
from lab.localcloud.dashboard import process
from lab.localcloud.dashboard.process import DashboardInfo
from stage_client.dashboard import dashboard_name
from stage_client.target import TargetError, load_local_target


def ensure_dashboard(
    state: StateDir | None = None, *, port: int | None = None, log: Callable[[str], None] = print
) -> DashboardInfo:
    """The page server of the deployed local stage's dashboard, started if it is not running."""
    state = state or StateDir.default()
    info = engine.read_engine(state)
    if info is None or not state.outputs_json.exists():
        raise TargetError("the local cloud is not running or the stage is not deployed: run make lab")
    name = dashboard_name(load_local_target(state.outputs_json))
    return process.start_dashboard(state, info, dashboard=name, port=port, log=log)


def stop_dashboard(state: StateDir | None = None) -> bool:
    return process.stop_dashboard(state or StateDir.default())
