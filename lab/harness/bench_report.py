"""The goals of issue 14 as `make bench` prints them: each measured figure beside its goal, PASS or
FAIL, and one summary line. Pure functions of the figures (the measuring is lab.harness.bench)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum


class Comparison(StrEnum):
    AT_LEAST = ">="
    AT_MOST = "<="


@dataclass(frozen=True)
class Goal:
    """One goal: a figure measured in this run, the bound it must meet, and what it is."""

    name: str
    figure: float
    comparison: Comparison
    bound: float
    unit: str
    detail: str = ""

    @property
    def passed(self) -> bool:
        if self.comparison is Comparison.AT_LEAST:
            return self.figure >= self.bound
        return self.figure <= self.bound

    def line(self, width: int = 46) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        figure = f"{_number(self.figure)} {self.unit}".strip()
        goal = f"{self.comparison.value} {_number(self.bound)}"
        detail = f"  ({self.detail})" if self.detail else ""
        return f"  {verdict}  {self.name:<{width}} {figure:>18}   goal {goal:<8}{detail}"


def _number(value: float) -> str:
    if math.isnan(value):
        return "n/a"  # the phase that measures it broke
    if value == int(value) and abs(value) >= 10:
        return f"{value:.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def engine_requests_per_event(function_calls_per_event: Mapping[str, float]) -> float:
    """Requests the engine serves for one event: the client's POST, plus every API call the
    stage's functions make for it (from the engine's own request record)."""
    return 1.0 + sum(function_calls_per_event.values())


def engine_bound_limit(raw_requests_per_second: float, requests_per_event: float) -> float:
    """The most events per second the engine could carry if it did nothing but serve their
    requests at its raw rate: the ceiling the end-to-end figure is compared with."""
    if requests_per_event <= 0:
        raise ValueError("requests per event must be positive")
    return raw_requests_per_second / requests_per_event


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        raise ValueError("median of no values")
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def summary_line(goals: Iterable[Goal]) -> str:
    goals = list(goals)
    failed = [goal.name for goal in goals if not goal.passed]
    passed = len(goals) - len(failed)
    verdict = "ALL GOALS PASS" if not failed else "FAIL: " + "; ".join(failed)
    return f"bench summary: {passed}/{len(goals)} goals met. {verdict}"
