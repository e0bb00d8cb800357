"""The load-test runner's argument handling (the run itself is exercised in tests/local)."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from functions.common.names import Output
from loadtest.run import build_parser, run, run_time_seconds
from stage_client.target import Target


@pytest.mark.parametrize(
    ("run_time", "seconds"), [("30s", 30), ("2m", 120), ("1h30m", 5400), ("1m5s", 65), ("45", 45)]
)
def test_run_time_in_locust_format(run_time: str, seconds: int) -> None:
    assert run_time_seconds(run_time) == seconds


@pytest.mark.parametrize("run_time", ["", "ten seconds", "5x", "-3s"])
def test_invalid_run_time_is_rejected(run_time: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        run_time_seconds(run_time)


def test_settings_default_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADTEST_USERS", "7")
    monkeypatch.setenv("LOADTEST_RUN_TIME", "2m")

    args = build_parser().parse_args([])

    assert (args.users, args.run_time) == (7, "2m")


def test_a_stage_without_the_audit_queue_fails_the_gate_before_locust_runs(tmp_path: Path) -> None:
    """Counting events (the default) on a stage deployed with eventAudit false: a clear gate failure
    at once, before Locust runs."""
    target = Target(
        name="prod", outputs={Output.API_URL.value: "http://127.0.0.1:9"}, api_url="x", region="us-east-1"
    )
    out = io.StringIO()
    args = build_parser().parse_args(["--out-dir", str(tmp_path / "run")])
    assert run(args, target, out) == 1
    assert out.getvalue().startswith("GATE FAILED: events: the load-test gate (--no-count-events skips")
    assert "eventAudit false" in out.getvalue()
    assert not (tmp_path / "run").exists()
