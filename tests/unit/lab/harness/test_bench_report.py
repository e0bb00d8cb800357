"""The bench's goal lines: PASS/FAIL at the bound (inclusive both ways), the engine-bound limit
(raw request rate over requests per event, the client's POST counted), the median, the summary."""

from __future__ import annotations

import argparse

import pytest

from lab.harness.bench_report import (
    Comparison,
    Goal,
    engine_bound_limit,
    engine_requests_per_event,
    median,
    summary_line,
)


@pytest.mark.parametrize(
    ("figure", "comparison", "bound", "passed"),
    [
        (60.0, Comparison.AT_LEAST, 60.0, True),
        (59.9, Comparison.AT_LEAST, 60.0, False),
        (100.0, Comparison.AT_MOST, 100.0, True),
        (100.1, Comparison.AT_MOST, 100.0, False),
        (0.0, Comparison.AT_MOST, 0.0, True),
        (0.01, Comparison.AT_MOST, 0.0, False),
    ],
)
def test_a_goal_passes_at_its_bound_and_fails_beyond(
    figure: float, comparison: Comparison, bound: float, passed: bool
) -> None:
    goal = Goal("g", figure, comparison, bound, "x")
    assert goal.passed is passed
    assert goal.line().lstrip().startswith("PASS" if passed else "FAIL")


def test_a_goal_line_shows_figure_goal_and_detail() -> None:
    line = Goal("ingest p95", 912.0, Comparison.AT_MOST, 100.0, "ms", "p50 55 ms").line()
    assert "912 ms" in line
    assert "goal <= 100" in line
    assert "(p50 55 ms)" in line


def test_engine_requests_per_event_counts_the_post_and_every_function_call() -> None:
    per_event = {"ingest SendMessage": 1.0, "DynamoDB writes": 2.0, "DynamoDB reads": 0.1, "PutEvents": 0.05}
    assert engine_requests_per_event(per_event) == pytest.approx(4.15)


def test_engine_bound_limit_is_the_raw_rate_over_requests_per_event() -> None:
    assert engine_bound_limit(480.0, 4.0) == pytest.approx(120.0)
    with pytest.raises(ValueError, match="positive"):
        engine_bound_limit(480.0, 0.0)


def test_median_of_odd_and_even_counts() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    with pytest.raises(ValueError, match="no values"):
        median([])


def test_summary_names_each_failed_goal() -> None:
    goals = [
        Goal("drain", 160.0, Comparison.AT_LEAST, 150.0, "msg/s"),
        Goal("ingest p95", 300.0, Comparison.AT_MOST, 100.0, "ms"),
    ]
    assert summary_line(goals) == "bench summary: 1/2 goals met. FAIL: ingest p95"
    assert summary_line(goals[:1]).endswith("ALL GOALS PASS")


def test_a_phase_that_broke_fails_its_goals_and_the_report_still_prints() -> None:
    from lab.harness.bench import (
        BROKEN_CALLS,
        BROKEN_DRAIN,
        BROKEN_LOAD,
        BROKEN_REDRIVE,
        NAN,
        BenchFigures,
        goals,
        report,
    )

    figures = BenchFigures(NAN, NAN, BROKEN_LOAD, BROKEN_DRAIN, BROKEN_REDRIVE, BROKEN_CALLS)
    verdicts = {goal.name: goal.passed for goal in goals(figures)}
    # Nothing measured, nothing passes: not even "nothing lost", which a broken phase cannot claim.
    assert verdicts
    assert not any(verdicts.values())
    assert all(" FAIL " in f" {goal.line()} " and "n/a" in goal.line() for goal in goals(figures))
    printed = report(figures, argparse.Namespace(users=8, seconds=20))
    assert printed.splitlines()[-1].startswith("bench summary: 0/")
    assert "bench summary" in summary_line(goals(figures))
