"""The dashboard page's server as a process of the local cloud: started for a dashboard of the
engine, answering on 127.0.0.1, restarted for another dashboard, gone after stop."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lab.localcloud.dashboard import process
from lab.localcloud.engine import process_runs
from lab.localcloud.state import CloudDir
from tests.local.conftest import LocalEngine


def get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_the_page_server_starts_answers_and_stops(local_engine: LocalEngine, tmp_path: Path) -> None:
    state = CloudDir(tmp_path).ensure()
    first = process.start_dashboard(state, local_engine.info, dashboard="no-such-dashboard")
    try:
        assert process.read_dashboard(state) == first
        assert get(first.url + "healthz") == (200, {"ok": True, "dashboard": "no-such-dashboard"})
        # The engine is asked for real: a dashboard it does not hold is a 404 that says so.
        status, body = get(first.url + "api/dashboard")
        assert (status, body["error"]) == (404, "dashboard_not_found")
        assert process.start_dashboard(state, local_engine.info, dashboard="no-such-dashboard") == first
        second = process.start_dashboard(state, local_engine.info, dashboard="another")
        assert second.pid != first.pid
        assert not process_runs(first.pid, process.MODULE), "the page of the other dashboard was not stopped"
    finally:
        stopped = process.stop_dashboard(state)
    assert stopped is True
    assert process.read_dashboard(state) is None
    assert not process.record_file(state).exists()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(second.url + "healthz", timeout=2)
