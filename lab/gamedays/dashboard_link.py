"""The link from a drill's report to the stage's own dashboard over the drill's time range: the
local page (lab dashboard) or, for a stage on AWS, the CloudWatch console."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from functions.common.names import Output
from lab.harness.paths import StateDir
from lab.localcloud.dashboard.process import read_dashboard
from stage_client.dashboard import console_url
from stage_client.target import Target

# The dashboard's graphs use one-minute periods: a minute before shows the calm before the fault,
# two after show the last period in which the backlog has gone.
BEFORE_S = 60
AFTER_S = 120


def drill_window(started: float, finished: float) -> tuple[str, str]:
    """(start, end) in ISO 8601, on whole minutes around the drill."""
    start = math.floor((started - BEFORE_S) / 60) * 60
    end = math.ceil((finished + AFTER_S) / 60) * 60
    return _iso(start), _iso(end)


def dashboard_link(target: Target, started: float, finished: float) -> dict[str, Any]:
    """{start, end, command, url}: url is the running local page or the console, None when the
    local page is not running (the command starts it)."""
    start, end = drill_window(started, finished)
    target_option = "" if target.name == "local" else f" --target {target.name}"
    link: dict[str, Any] = {
        "start": start,
        "end": end,
        "command": f"lab dashboard --start {start} --end {end}{target_option}",
        "url": None,
    }
    if not target.is_local:
        # A target read from variables (--target env) may not carry the dashboard's name.
        if target.optional_output(Output.DASHBOARD_NAME):
            link["url"] = console_url(target, start, end)
        return link
    page = read_dashboard(StateDir.default())
    if page is not None and page.endpoint_url == target.endpoint_url:
        link["url"] = page.url_for(start, end)
    return link


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
