"""The cold-start timing: each import timed in fresh processes (nothing imported before), with
the function's environment, and its ratio to the baseline's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lab.harness.cold_start import ImportCost, handler_import_costs, import_seconds


def test_an_import_is_timed_in_a_fresh_process_with_the_given_environment(tmp_path: Path) -> None:
    # A module that sleeps as long as its environment says: only a fresh process with that
    # environment times it (a cached import would take no time).
    (tmp_path / "slow_module.py").write_text(
        "import os, time\ntime.sleep(float(os.environ['SLEEP_SECONDS']))\n"
    )
    seconds = import_seconds(
        Path(sys.executable), "slow_module", env={"SLEEP_SECONDS": "0.05"}, cwd=tmp_path, runs=3
    )
    assert 0.05 <= seconds < 1.0


def test_each_handler_is_compared_with_the_baseline(tmp_path: Path) -> None:
    (tmp_path / "fast_handler.py").write_text("X = 1\n")
    (tmp_path / "slow_handler.py").write_text("import time\ntime.sleep(0.2)\n")
    costs = handler_import_costs(
        Path(sys.executable),
        {"slow_handler": {}, "fast_handler": {}},
        base_env={},
        cwd=tmp_path,
        runs=1,
    )
    assert [cost.module for cost in costs] == ["fast_handler", "slow_handler"]
    assert costs[1].seconds >= 0.2
    assert costs[1].ratio > costs[0].ratio


def test_ratio_is_handler_over_baseline() -> None:
    assert ImportCost("m", 0.3, 0.2).ratio == pytest.approx(1.5)
