"""The load-test runner's argument handling (the run itself is exercised in tests/local)."""

from __future__ import annotations

import argparse

import pytest

from loadtest.run import build_parser, run_time_seconds


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
