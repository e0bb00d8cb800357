"""CloudWatch metric-alarm evaluation as AWS documents it, as pure functions (no AWS calls).

The agent feeds it each alarm's definition (from DescribeAlarms) and the alarm metric's per-period
values (from GetMetricData, one MetricStat query per alarm, which matches dimensions exactly) and
applies the decision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BASIC_STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")


@dataclass(frozen=True)
class AlarmDefinition:
    """The parts of a metric alarm that decide its state."""

    name: str
    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str  # a basic statistic, or an extended one such as p99
    period: int
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    comparison: str
    treat_missing_data: str
    state: str

    @property
    def is_extended(self) -> bool:
        return self.statistic not in BASIC_STATISTICS

    @classmethod
    def from_describe(cls, alarm: Mapping[str, Any]) -> AlarmDefinition | None:
        """From one DescribeAlarms MetricAlarms entry; None for an alarm this evaluator cannot
        compute (metric math, anomaly detection), which the agent then reports and leaves alone."""
        metric = _single_metric(alarm)
        if metric is None or "Threshold" not in alarm:
            return None
        namespace, metric_name, dimensions, statistic, period = metric
        evaluation_periods = int(alarm.get("EvaluationPeriods") or 1)
        return cls(
            name=str(alarm["AlarmName"]),
            namespace=namespace,
            metric_name=metric_name,
            dimensions=tuple(sorted((str(d["Name"]), str(d["Value"])) for d in dimensions)),
            statistic=statistic,
            period=period,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=int(alarm.get("DatapointsToAlarm") or evaluation_periods),
            threshold=float(alarm["Threshold"]),
            comparison=str(alarm["ComparisonOperator"]),
            treat_missing_data=str(alarm.get("TreatMissingData") or "missing"),
            state=str(alarm.get("StateValue") or "INSUFFICIENT_DATA"),
        )


MetricSpec = tuple[str, str, list[Any], str, int]


def _single_metric(alarm: Mapping[str, Any]) -> MetricSpec | None:
    """(namespace, metric, dimensions, statistic, period) of an alarm on one metric."""
    if alarm.get("MetricName") and alarm.get("Namespace"):
        return _metric_fields(alarm)
    return _single_metric_stat(alarm.get("Metrics") or [])


def _metric_fields(alarm: Mapping[str, Any]) -> MetricSpec | None:
    statistic = alarm.get("ExtendedStatistic") or alarm.get("Statistic")
    if not statistic:
        return None
    return (
        str(alarm["Namespace"]),
        str(alarm["MetricName"]),
        list(alarm.get("Dimensions") or []),
        str(statistic),
        int(alarm.get("Period") or 60),
    )


def _single_metric_stat(metrics: list[Mapping[str, Any]]) -> MetricSpec | None:
    """A Metrics list is supported when it is one plain MetricStat query (no expression)."""
    if len(metrics) != 1 or not metrics[0].get("ReturnData", True) or "MetricStat" not in metrics[0]:
        return None
    stat = metrics[0]["MetricStat"]
    return (
        str(stat["Metric"]["Namespace"]),
        str(stat["Metric"]["MetricName"]),
        list(stat["Metric"].get("Dimensions") or []),
        str(stat["Stat"]),
        int(stat["Period"]),
    )


@dataclass(frozen=True)
class Decision:
    """The state an alarm should be in now, and why (becomes the StateReason)."""

    state: str
    reason: str
    values: tuple[float | None, ...]

    def changes(self, definition: AlarmDefinition) -> bool:
        return self.state != definition.state


def evaluation_window(definition: AlarmDefinition, now: float) -> tuple[int, int]:
    """[start, end) of the evaluation range: the last evaluation_periods complete periods, aligned
    to the period as CloudWatch aligns its statistics (a period still filling is not judged)."""
    end = int(now // definition.period) * definition.period
    return end - definition.period * definition.evaluation_periods, end


def breaches(value: float, comparison: str, threshold: float) -> bool:
    if comparison == "GreaterThanThreshold":
        return value > threshold
    if comparison == "GreaterThanOrEqualToThreshold":
        return value >= threshold
    if comparison == "LessThanThreshold":
        return value < threshold
    if comparison == "LessThanOrEqualToThreshold":
        return value <= threshold
    raise ValueError(f"unsupported ComparisonOperator {comparison!r} (anomaly-detection band?)")


def evaluate(definition: AlarmDefinition, values_by_period: Mapping[int, float], now: float) -> Decision:
    """Decide the state from the per-period values (keyed by period start, epoch seconds).

    "M out of N" with missing data as AWS documents it: when fewer datapoints exist than
    datapoints_to_alarm, the missing periods are filled per TreatMissingData; with no datapoint
    at all, missing -> INSUFFICIENT_DATA, ignore -> current state, breaching/notBreaching as named.
    """
    start, end = evaluation_window(definition, now)
    periods = range(start, end, definition.period)
    values = tuple(
        float(values_by_period[p]) if p in values_by_period and not math.isnan(values_by_period[p]) else None
        for p in periods
    )
    present = [v for v in values if v is not None]
    missing = len(values) - len(present)
    treat = definition.treat_missing_data
    summary = _summary(definition, values)
    if not present:
        return _without_datapoints(definition, values, summary)
    breaching = sum(1 for v in present if breaches(v, definition.comparison, definition.threshold))
    if len(present) < definition.datapoints_to_alarm and treat == "breaching":
        breaching += missing
    needed = definition.datapoints_to_alarm
    if breaching >= needed:
        return Decision(
            "ALARM",
            f"Threshold Crossed: {breaching} of {len(values)} datapoints breaching ({summary})",
            values,
        )
    return Decision(
        "OK", f"{breaching} of {len(values)} datapoints breaching, {needed} needed ({summary})", values
    )


def _without_datapoints(
    definition: AlarmDefinition, values: tuple[float | None, ...], summary: str
) -> Decision:
    """No datapoint in the whole evaluation range: TreatMissingData decides."""
    treat = definition.treat_missing_data
    if treat == "breaching":
        return Decision(
            "ALARM", f"no datapoints in the evaluation range, treated as breaching ({summary})", values
        )
    if treat == "notBreaching":
        return Decision(
            "OK", f"no datapoints in the evaluation range, treated as not breaching ({summary})", values
        )
    if treat == "ignore":
        return Decision(
            definition.state, f"no datapoints, state kept (treat missing data: ignore; {summary})", values
        )
    return Decision("INSUFFICIENT_DATA", f"no datapoints in the evaluation range ({summary})", values)


def _summary(definition: AlarmDefinition, values: tuple[float | None, ...]) -> str:
    shown = ", ".join("-" if v is None else f"{v:g}" for v in values)
    return (
        f"{definition.statistic} of {definition.namespace}/{definition.metric_name} per "
        f"{definition.period} s [{shown}] {definition.comparison} {definition.threshold:g}"
    )


# GetMetricData takes at most 500 queries per call (CloudWatch API Reference, GetMetricData).
METRIC_DATA_QUERY_LIMIT = 500


def metric_data_query(definition: AlarmDefinition, query_id: str) -> dict[str, Any]:
    """The alarm's metric as one GetMetricData MetricStat query: the same metric (exact dimensions),
    period and statistic (basic or extended, e.g. p99) that GetMetricStatistics would be asked."""
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": definition.namespace,
                "MetricName": definition.metric_name,
                "Dimensions": [{"Name": name, "Value": value} for name, value in definition.dimensions],
            },
            "Period": definition.period,
            "Stat": definition.statistic,
        },
        "ReturnData": True,
    }


def values_from_metric_data(
    definition: AlarmDefinition, timestamps: Sequence[Any], values: Sequence[float]
) -> dict[int, float]:
    """One GetMetricData result (parallel Timestamps and Values) -> {period start: value}."""
    by_period: dict[int, float] = {}
    for timestamp, value in zip(timestamps, values, strict=True):
        start = int(timestamp.timestamp() if hasattr(timestamp, "timestamp") else float(timestamp))
        by_period[start - start % definition.period] = float(value)
    return by_period
