"""One refresh of a dashboard as the fewest CloudWatch calls the API allows: every metric widget's
series in GetMetricData calls of up to 500 queries per region, and every alarm it shows in
DescribeAlarms calls of up to 100 names.

Limits (Amazon CloudWatch API Reference): GetMetricData, "A single GetMetricData call can include
as many as 500 MetricDataQuery structures"; DescribeAlarms, AlarmNames "Maximum number of 100
items". A widget with math or search expressions gets a call of its own: METRICS() and the ids in
its expressions mean that widget's queries, as on the console.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lab.localcloud.dashboard.widgets import Dashboard, MetricSeries, MetricWidget, is_query_id

MAX_QUERIES_PER_CALL = 500
MAX_ALARM_NAMES_PER_CALL = 100


@dataclass(frozen=True)
class SeriesRef:
    """Where one query's result goes on the page: widget index and series key."""

    widget: int
    series: str


@dataclass
class MetricDataCall:
    """One GetMetricData request (its queries) and which series each query id feeds."""

    region: str
    queries: list[dict[str, Any]] = field(default_factory=list)
    refs: dict[str, SeriesRef] = field(default_factory=dict)

    def add(self, query_id: str, series: MetricSeries, ref: SeriesRef) -> None:
        self.queries.append(series.metric_data_query(query_id))
        self.refs[query_id] = ref


def plan_metric_data(dashboard: Dashboard) -> list[MetricDataCall]:
    """The GetMetricData calls of one refresh, in widget order."""
    shared: dict[str, list[MetricDataCall]] = defaultdict(list)
    own: list[MetricDataCall] = []
    for index, widget in enumerate(dashboard.widgets):
        if not isinstance(widget, MetricWidget):
            continue
        if widget.uses_expressions:
            own.extend(_expression_widget_calls(index, widget))
            continue
        for series in widget.queried_series():
            calls = shared[series.region]
            if not calls or len(calls[-1].queries) >= MAX_QUERIES_PER_CALL:
                calls.append(MetricDataCall(region=series.region))
            # Ids unique across the call: widget and row of the body.
            calls[-1].add(f"w{index}_{series.key}", series, SeriesRef(index, series.key))
    return [call for calls in shared.values() for call in calls] + own


def _expression_widget_calls(index: int, widget: MetricWidget) -> Iterator[MetricDataCall]:
    call = MetricDataCall(region=widget.region)
    taken = {s.author_id for s in widget.series if s.author_id}
    for series in widget.queried_series():
        query_id = series.author_id if series.author_id and is_query_id(series.author_id) else None
        if query_id is None:
            query_id = f"w{index}_{series.key}"
            while query_id in taken:
                query_id += "_"
        call.add(query_id, series, SeriesRef(index, series.key))
    if call.queries:
        yield call


def _alarm_arn_parts(arn: str) -> list[str]:
    """arn:aws:cloudwatch:<region>:<account>:alarm:<name> (a name may hold colons)."""
    parts = arn.split(":", 6)
    if len(parts) != 7 or parts[2] != "cloudwatch" or parts[5] != "alarm":
        raise ValueError(f"not a CloudWatch alarm ARN: {arn!r}")
    return parts


def alarm_name(arn: str) -> str:
    return _alarm_arn_parts(arn)[6]


def alarm_region(arn: str) -> str:
    return _alarm_arn_parts(arn)[3]


@dataclass(frozen=True)
class AlarmCall:
    region: str
    names: tuple[str, ...]


def plan_alarms(dashboard: Dashboard) -> tuple[list[AlarmCall], dict[str, str]]:
    """(DescribeAlarms calls by region in batches of 100 names, arn -> problem for ARNs that are not
    alarm ARNs)."""
    by_region: dict[str, list[str]] = defaultdict(list)
    problems: dict[str, str] = {}
    for arn in dashboard.alarm_arns():
        try:
            by_region[alarm_region(arn)].append(alarm_name(arn))
        except ValueError as error:
            problems[arn] = str(error)
    calls = [
        AlarmCall(region, tuple(names[start : start + MAX_ALARM_NAMES_PER_CALL]))
        for region, names in by_region.items()
        for start in range(0, len(names), MAX_ALARM_NAMES_PER_CALL)
    ]
    return calls, problems
