"""A drill report links the stage's dashboard over the drill, on whole minutes around it."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from functions.common.names import Output
from lab.gamedays.dashboard_link import dashboard_link, drill_window
from lab.gamedays.report import render_html
from lab.harness.paths import StateDir
from lab.localcloud.dashboard import process
from stage_client.target import Target

STARTED = datetime(2026, 11, 2, 10, 3, 20, tzinfo=UTC).timestamp()
FINISHED = datetime(2026, 11, 2, 10, 6, 5, tzinfo=UTC).timestamp()


def target(*, local: bool, dashboard: bool = True) -> Target:
    outputs = {Output.DASHBOARD_NAME.value: "ingestion-x-dashboard"} if dashboard else {}
    return Target(
        name="local" if local else "stage:dev",
        outputs=outputs,
        api_url="http://api",
        region="us-east-1",
        endpoint_url="http://127.0.0.1:4566" if local else None,
    )


def test_the_window_is_a_minute_before_and_two_after_on_whole_minutes() -> None:
    assert drill_window(STARTED, FINISHED) == ("2026-11-02T10:02:00Z", "2026-11-02T10:09:00Z")


def test_a_stage_on_aws_links_the_console() -> None:
    link = dashboard_link(target(local=False), STARTED, FINISHED)
    assert link["url"] == (
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1"
        "#dashboards/dashboard/ingestion-x-dashboard?start=2026-11-02T10:02:00Z&end=2026-11-02T10:09:00Z"
    )
    assert link["command"].endswith("--target stage:dev")
    assert dashboard_link(target(local=False, dashboard=False), STARTED, FINISHED)["url"] is None


def test_the_local_page_is_linked_when_it_serves_that_cloud(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_STATE_DIR", str(tmp_path))
    assert dashboard_link(target(local=True), STARTED, FINISHED)["url"] is None
    page = process.DashboardInfo(pid=1, port=8123, dashboard="d", endpoint_url="http://127.0.0.1:4566")
    # The module, not the function of the same name that lab.gamedays exports.
    module = sys.modules["lab.gamedays.dashboard_link"]
    monkeypatch.setattr(module, "read_dashboard", lambda state: page if state == StateDir(tmp_path) else None)
    link = dashboard_link(target(local=True), STARTED, FINISHED)
    assert link["url"] == "http://127.0.0.1:8123/?start=2026-11-02T10:02:00Z&end=2026-11-02T10:09:00Z"
    assert link["command"] == "lab dashboard --start 2026-11-02T10:02:00Z --end 2026-11-02T10:09:00Z"


def test_the_html_report_carries_the_link() -> None:
    link = dashboard_link(target(local=False), STARTED, FINISHED)
    report = {
        "drill": "poison-pill",
        "outcome": "passed",
        "target": "stage:dev",
        "injector": "ssm",
        "startedAt": "2026-11-02T10:03:20+00:00",
        "elapsedSeconds": 165.0,
        "events": 10,
        "timeline": [],
        "samples": [],
        "assertions": [],
        "dashboard": link,
    }
    page = render_html(report)
    assert (
        'href="https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards' in page
    )
    assert "lab dashboard --start 2026-11-02T10:02:00Z" in page
