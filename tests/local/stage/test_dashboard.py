"""The stage's own dashboard in a real browser (Debian's chromium through its chromedriver) during a
poison-pill drill: the DLQ depth and age widgets rise and the DLQ alarms turn ALARM on the page,
then after the redrive the widgets fall back to 0 and the alarms to OK.

It also measures what a person waits for and what each refresh costs, and saves a screenshot of the
dashboard during the drill: reports/dashboard/ (docs/local-cloud.md shows a copy, docs/images/).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from functions.common.names import Output
from lab.gamedays import GamedayResult, run_gameday
from lab.gamedays.report import REPORTS_DIR
from lab.harness.dashboard import ensure_dashboard
from stage_client.target import Target
from tests import REPO_ROOT
from tests.local.conftest import LocalEngine
from tests.local.engine.test_process import listening_addresses
from tests.local.stage.test_gamedays import quiet_stage, runs_in_tmp

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
INSTALL = "apt-get install -y chromium chromium-driver (Debian; .ci/run installs both)"
# Headless, and nothing that would reach out of this machine (the flags this kind of machine needs).
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1450",
)
OUT_DIR = REPORTS_DIR / "dashboard"
DLQ_WIDGET = "Queue DLQ"
RED = "rgb(214, 39, 40)"

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason=f"Debian's chromium and chromedriver are absent: {INSTALL}",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    assert CHROMIUM is not None
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_page(driver: Any, what: str, probe: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            state = driver.execute_script(
                "return JSON.stringify({e: window.labDashboard.error, n: window.labDashboard.refreshes})"
            )
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; page: {state}")
        time.sleep(1.0)


def dlq_widget(driver: Any) -> dict[str, Any]:
    """What the DLQ widget shows now: the latest value of each of its lines, by label."""
    found = driver.execute_script(
        "const w = [...document.querySelectorAll('section.metric')].find("
        f"  e => (e.dataset.title || '').startsWith('{DLQ_WIDGET}'));"
        "return w ? {latest: w.dataset.latest || '{}', points: w.dataset.points || '0'} : null;"
    )
    assert found, "the page has no DLQ widget: the stage's dashboard must have one"
    return {"latest": json.loads(found["latest"]), "points": int(found["points"])}


def alarm_states(driver: Any) -> dict[str, dict[str, str]]:
    """Each alarm of the alarm widget: its state and the colour a person sees."""
    return driver.execute_script(
        "const out = {};"
        "for (const li of document.querySelectorAll('section.alarm li.alarm')) {"
        "  out[li.dataset.alarm] = {state: li.dataset.state,"
        "    colour: getComputedStyle(li.querySelector('.dot')).backgroundColor};"
        "}"
        "return out;"
    )


def test_lab_dashboard_prints_the_running_page_which_listens_on_loopback_only(
    local_target: Target, local_engine: LocalEngine
) -> None:
    page = ensure_dashboard(local_engine.state)
    env = {**os.environ, "LAB_STATE_DIR": str(local_engine.state.root)}
    result = subprocess.run(
        [sys.executable, "-m", "lab.cli", "--json", "dashboard", "--range", "1h"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    )
    answer = json.loads(result.stdout)
    assert answer["url"] == page.url_for("-PT1H")
    assert answer["pid"] == page.pid, "a running page is reused, not started again"
    assert answer["dashboard"] == local_target.output(Output.DASHBOARD_NAME)
    assert listening_addresses([page.pid]) == {f"0100007F:{page.port:04X}"}


@needs_chromium
@pytest.mark.usefixtures(quiet_stage.__name__, runs_in_tmp.__name__)
def test_the_dashboard_follows_a_poison_pill_drill(
    local_target: Target, local_engine: LocalEngine, browser: Any, tmp_path: Path
) -> None:
    page = ensure_dashboard(local_engine.state)
    prefix = local_target.output(Output.DLQ_NAME).rsplit("-events-dlq", 1)[0]
    depth_alarm, age_alarm = f"{prefix}-dlq-depth", f"{prefix}-dlq-age"

    browser.get(page.url_for("-PT5M"))
    wait_page(
        browser,
        "the first refresh",
        lambda: browser.execute_script("return window.labDashboard.refreshes"),
        30,
    )
    load = browser.execute_script(
        "const n = performance.getEntriesByType('navigation')[0];"
        "return {loadEventMs: Math.round(n.loadEventEnd), firstDataMs: window.labDashboard.firstDataMs};"
    )
    assert browser.execute_script("return window.labDashboard.error") is None
    assert {depth_alarm, age_alarm} <= set(alarm_states(browser))

    result: list[GamedayResult] = []
    drill = threading.Thread(
        target=lambda: result.append(
            run_gameday(local_target, "poison-pill", events=10, report_dir=tmp_path)
        ),
        name="poison-pill",
    )
    drill.start()
    try:
        # The backlog and its age rise on the DLQ widget and the DLQ alarms turn ALARM, in red.
        wait_page(
            browser,
            "the DLQ widget to show 10 messages ageing and both DLQ alarms in ALARM",
            lambda: (
                (dlq_widget(browser)["latest"].get("visible") or 0) >= 10
                and (dlq_widget(browser)["latest"].get("age of oldest (s)") or 0) > 0
                and all(alarm_states(browser)[a]["state"] == "ALARM" for a in (depth_alarm, age_alarm))
            ),
            timeout=240,
        )
        assert alarm_states(browser)[depth_alarm]["colour"] == RED
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(OUT_DIR / "poison-pill-dashboard.png"))
    finally:
        drill.join(timeout=400)
    assert result, "the drill did not finish"
    assert result[0].outcome == "passed", result[0].error

    # After the redrive: both lines back to 0 (the next one-minute period) and the alarms OK.
    wait_page(
        browser,
        "the DLQ widget back to 0 and the DLQ alarms OK",
        lambda: (
            dlq_widget(browser)["latest"].get("visible") == 0
            and dlq_widget(browser)["latest"].get("age of oldest (s)") == 0
            and all(alarm_states(browser)[a]["state"] == "OK" for a in (depth_alarm, age_alarm))
        ),
        timeout=180,
    )
    cost = measure_refreshes(browser)
    assert cost["pageRequestsPerRefresh"] == 1
    assert cost["cloudwatchCalls"].get("GetMetricData") == 1
    assert cost["cloudwatchCalls"].get("DescribeAlarms") == 1
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "measurements.json").write_text(
        json.dumps({"url": page.url_for("-PT5M"), "load": load, "refresh": cost}, indent=2) + "\n"
    )
    print(f"dashboard load {load}, refresh {cost}")


def measure_refreshes(driver: Any, seconds: float = 20.0) -> dict[str, Any]:
    """Requests the page sends per refresh, and the CloudWatch calls and time behind each."""
    before = driver.execute_script("return window.labDashboard.refreshes")
    requests_before = driver.execute_script(
        "return performance.getEntriesByType('resource').filter(e => e.name.includes('/api/')).length"
    )
    time.sleep(seconds)
    after = driver.execute_script("return window.labDashboard.refreshes")
    sample = driver.execute_script(
        "const api = performance.getEntriesByType('resource').filter(e => e.name.includes('/api/'));"
        "const last = api[api.length - 1];"
        "return {requests: api.length, bytes: last.encodedBodySize, ms: Math.round(last.duration),"
        "        calls: window.labDashboard.last.calls, queries: window.labDashboard.last.queries,"
        "        upstreamMs: window.labDashboard.last.upstreamMs};"
    )
    refreshes = after - before
    assert refreshes >= 2, f"only {refreshes} refreshes in {seconds:.0f} s"
    return {
        "refreshes": refreshes,
        "seconds": seconds,
        "pageRequestsPerRefresh": (sample["requests"] - requests_before) / refreshes,
        "cloudwatchCalls": sample["calls"],
        "queries": sample["queries"],
        "responseBytes": sample["bytes"],
        "requestMs": sample["ms"],
        "upstreamMs": sample["upstreamMs"],
    }
