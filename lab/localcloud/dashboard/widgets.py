"""A CloudWatch dashboard body read into typed widgets: metric graphs (each series with its metric,
dimensions, statistic, period, region, axis), alarm status lists, text; anything else is kept as
an unsupported widget so the page says what it does not draw instead of hiding it.

The format is AWS's: Amazon CloudWatch API Reference, "Dashboard Body Structure and Syntax"
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html).
The defaults below are that document's: period 300 s, statistic Average, width and height 6,
axis left, every series visible; "." repeats the previous row's field at the same position.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

DEFAULT_PERIOD_S = 300
DEFAULT_STAT = "Average"
DEFAULT_SIZE = 6
GRID_COLUMNS = 24
SAME_AS_PREVIOUS = "."
# The console's JSON editor writes "..." for "the previous row, up to the fields that follow".
REST_OF_PREVIOUS = "..."

_BASIC_STATS = {"SampleCount", "Average", "Sum", "Minimum", "Maximum", "IQM"}
# p95, p99.9, and the trimmed/winsorized/percentile-rank families such as TM(10%:90%) or tm99
# (CloudWatch User Guide, "CloudWatch statistics definitions").
_EXTENDED_STAT = re.compile(
    r"^(p(100|\d{1,2}(\.\d+)?)|(tm|tc|ts|wm|pr)(\d{1,2}(\.\d+)?|\(.+\)))$", re.IGNORECASE
)
_QUERY_ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")


class DashboardBodyError(ValueError):
    """The body is not a dashboard body at all (not JSON, no widgets array)."""


@dataclass(frozen=True)
class Layout:
    """Position on the 24-column grid; x/y None: the next free place, as the console does."""

    x: int | None
    y: int | None
    width: int
    height: int

    def to_dict(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}


@dataclass(frozen=True)
class MetricSeries:
    """One row of a metric widget's `metrics` array: a metric (namespace, name, dimensions) or a
    math/search expression, with the statistic and period it is drawn with."""

    key: str
    label: str
    region: str
    y_axis: str
    visible: bool
    color: str | None
    author_id: str | None
    namespace: str | None = None
    metric_name: str | None = None
    dimensions: tuple[tuple[str, str], ...] = ()
    stat: str | None = None
    period: int | None = None
    account_id: str | None = None
    expression: str | None = None
    error: str | None = None

    @property
    def is_expression(self) -> bool:
        return self.expression is not None

    def metric_data_query(self, query_id: str) -> dict[str, Any]:
        """This series as one MetricDataQuery of GetMetricData (API Reference, MetricDataQuery)."""
        query: dict[str, Any] = {"Id": query_id, "ReturnData": self.visible}
        if self.expression is not None:
            query["Expression"] = self.expression
            if self.period is not None:
                query["Period"] = self.period
        else:
            metric: dict[str, Any] = {"Namespace": self.namespace, "MetricName": self.metric_name}
            if self.dimensions:
                metric["Dimensions"] = [{"Name": name, "Value": value} for name, value in self.dimensions]
            query["MetricStat"] = {"Metric": metric, "Period": self.period, "Stat": self.stat}
        if self.account_id:
            query["AccountId"] = self.account_id
        return query

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": self.key,
            "label": self.label,
            "yAxis": self.y_axis,
            "visible": self.visible,
            "color": self.color,
            "error": self.error,
        }
        if self.expression is not None:
            data["expression"] = self.expression
        else:
            data.update(
                namespace=self.namespace,
                metricName=self.metric_name,
                dimensions=dict(self.dimensions),
                stat=self.stat,
                period=self.period,
            )
        return data


@dataclass(frozen=True)
class HorizontalAnnotation:
    value: float
    label: str | None
    color: str | None
    y_axis: str

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "label": self.label, "color": self.color, "yAxis": self.y_axis}


@dataclass(frozen=True)
class MetricWidget:
    layout: Layout
    title: str
    region: str
    view: str
    stacked: bool
    series: tuple[MetricSeries, ...]
    y_axis: Mapping[str, Any] = field(default_factory=dict)
    legend: str = "bottom"
    horizontal: tuple[HorizontalAnnotation, ...] = ()
    alarm_arns: tuple[str, ...] = ()
    kind: str = "metric"

    @property
    def uses_expressions(self) -> bool:
        """Math (METRICS(), ids of this widget) must see only this widget's queries."""
        return any(s.is_expression for s in self.series)

    def queried_series(self) -> list[MetricSeries]:
        """What GetMetricData must be asked: every valid series; hidden plain metrics are skipped
        unless an expression of the widget may read them."""
        return [s for s in self.series if s.error is None and (s.visible or self.uses_expressions)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "layout": self.layout.to_dict(),
            "title": self.title,
            "region": self.region,
            "view": self.view,
            "stacked": self.stacked,
            "yAxis": dict(self.y_axis),
            "legend": self.legend,
            "series": [s.to_dict() for s in self.series],
            "horizontal": [h.to_dict() for h in self.horizontal],
            "alarms": list(self.alarm_arns),
        }


@dataclass(frozen=True)
class AlarmStatusWidget:
    layout: Layout
    title: str
    alarm_arns: tuple[str, ...]
    sort_by: str
    states: tuple[str, ...]
    kind: str = "alarm"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "layout": self.layout.to_dict(),
            "title": self.title,
            "alarms": list(self.alarm_arns),
            "sortBy": self.sort_by,
            "states": list(self.states),
        }


@dataclass(frozen=True)
class TextWidget:
    layout: Layout
    markdown: str
    transparent: bool
    kind: str = "text"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "layout": self.layout.to_dict(),
            "markdown": self.markdown,
            "transparent": self.transparent,
        }


@dataclass(frozen=True)
class UnsupportedWidget:
    """A log, explorer or malformed widget: shown as a box naming what is not drawn, and why."""

    layout: Layout
    title: str
    reason: str
    kind: str = "unsupported"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "layout": self.layout.to_dict(),
            "title": self.title,
            "reason": self.reason,
        }


Widget = MetricWidget | AlarmStatusWidget | TextWidget | UnsupportedWidget


@dataclass(frozen=True)
class Dashboard:
    """A parsed body. `start`/`end` are the body's own default time range, if it sets one."""

    widgets: tuple[Widget, ...]
    start: str | None
    end: str | None
    period_override: str | None

    def alarm_arns(self) -> list[str]:
        """Every alarm any widget shows, once each, in order of appearance."""
        seen: dict[str, None] = {}
        for widget in self.widgets:
            if isinstance(widget, AlarmStatusWidget | MetricWidget):
                seen.update(dict.fromkeys(widget.alarm_arns))
        return list(seen)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "periodOverride": self.period_override,
            "widgets": [w.to_dict() for w in self.widgets],
        }


def parse_body(body: str | Mapping[str, Any], *, default_region: str) -> Dashboard:
    """The dashboard of a GetDashboard DashboardBody (a JSON string) or of its parsed form.

    A widget the page cannot draw becomes an UnsupportedWidget naming why; only a body that is not
    a dashboard at all raises DashboardBodyError.
    """
    if isinstance(body, str):
        try:
            parsed = json.loads(body)
        except json.JSONDecodeError as error:
            raise DashboardBodyError(f"the dashboard body is not JSON: {error}") from None
    else:
        parsed = body
    if not isinstance(parsed, Mapping) or not isinstance(parsed.get("widgets"), list):
        raise DashboardBodyError("the dashboard body has no widgets array")
    widgets = tuple(
        _widget(raw, index, default_region=default_region) for index, raw in enumerate(parsed["widgets"])
    )
    return Dashboard(
        widgets=widgets,
        start=_optional_str(parsed.get("start")),
        end=_optional_str(parsed.get("end")),
        period_override=_optional_str(parsed.get("periodOverride")),
    )


def _widget(raw: Any, index: int, *, default_region: str) -> Widget:
    if not isinstance(raw, Mapping):
        return UnsupportedWidget(_layout({}), f"widget {index}", "not an object")
    layout = _layout(raw)
    props = raw.get("properties")
    kind = raw.get("type")
    if not isinstance(props, Mapping):
        return UnsupportedWidget(layout, f"widget {index}", "no properties object")
    if kind == "metric":
        return _metric_widget(layout, props, index, default_region=default_region)
    if kind == "alarm":
        return _alarm_widget(layout, props)
    if kind == "text":
        return _text_widget(layout, props)
    title = str(props.get("title") or kind)
    return UnsupportedWidget(layout, title, f"{kind!r} widgets are not drawn by the local dashboard page")


def _alarm_widget(layout: Layout, props: Mapping[str, Any]) -> Widget:
    title = str(props.get("title") or "")
    arns = props.get("alarms")
    if not isinstance(arns, list) or not _is_str_list(arns):
        return UnsupportedWidget(layout, title or "alarms", "alarm widget without an alarms array")
    states = props.get("states") or []
    return AlarmStatusWidget(
        layout=layout,
        title=title,
        alarm_arns=tuple(arns),
        sort_by=str(props.get("sortBy") or "default"),
        states=tuple(str(s) for s in states) if isinstance(states, list) else (),
    )


def _text_widget(layout: Layout, props: Mapping[str, Any]) -> Widget:
    markdown = props.get("markdown")
    if not isinstance(markdown, str):
        return UnsupportedWidget(layout, "text", "text widget without markdown")
    return TextWidget(layout=layout, markdown=markdown, transparent=props.get("background") == "transparent")


def _metric_widget(layout: Layout, props: Mapping[str, Any], index: int, *, default_region: str) -> Widget:
    title = str(props.get("title") or "")
    region = str(props.get("region") or default_region)
    annotations = props.get("annotations") if isinstance(props.get("annotations"), Mapping) else {}
    assert isinstance(annotations, Mapping)
    alarm_arns = annotations.get("alarms") or []
    rows = props.get("metrics") or []
    if not isinstance(rows, list) or not _is_str_list(alarm_arns):
        return UnsupportedWidget(
            layout, title or f"widget {index}", "metrics or annotations.alarms malformed"
        )
    if not rows and not alarm_arns:
        return UnsupportedWidget(layout, title or f"widget {index}", "metric widget with no metrics")
    widget_defaults = _WidgetDefaults(
        region=region,
        period=props.get("period", DEFAULT_PERIOD_S),
        stat=props.get("stat", DEFAULT_STAT),
        account_id=_optional_str(props.get("accountId")),
    )
    series = _series_of(rows, widget_defaults)
    legend = props.get("legend")
    return MetricWidget(
        layout=layout,
        title=title,
        region=region,
        view=str(props.get("view") or "timeSeries"),
        stacked=bool(props.get("stacked", False)),
        series=series,
        y_axis=y_axis if isinstance(y_axis := props.get("yAxis"), Mapping) else {},
        legend=str(legend.get("position", "bottom")) if isinstance(legend, Mapping) else "bottom",
        horizontal=_horizontal_annotations(annotations.get("horizontal") or []),
        alarm_arns=tuple(alarm_arns),
    )


@dataclass(frozen=True)
class _WidgetDefaults:
    region: str
    period: Any
    stat: Any
    account_id: str | None


def _series_of(rows: list[Any], defaults: _WidgetDefaults) -> tuple[MetricSeries, ...]:
    previous: list[str] = []
    series: list[MetricSeries] = []
    for position, row in enumerate(rows):
        options: Mapping[str, Any] = (
            row[-1] if isinstance(row, list) and row and isinstance(row[-1], dict) else {}
        )
        fields = row[:-1] if options else row
        base = MetricSeries(
            key=f"s{position}",
            label=f"row {position}",
            region=str(options.get("region") or defaults.region),
            y_axis="right" if options.get("yAxis") == "right" else "left",
            visible=options.get("visible", True) is not False,
            color=_optional_str(options.get("color")),
            author_id=_optional_str(options.get("id")),
            account_id=_optional_str(options.get("accountId")) or defaults.account_id,
        )
        if not isinstance(row, list) or not _is_str_list(fields):
            series.append(replace(base, error="not a metric row"))
        elif isinstance(options.get("expression"), str) and not fields:
            series.append(_expression(base, options))
        else:
            resolved, problem = _resolve_fields(list(fields), previous)
            if problem:
                series.append(replace(base, error=problem))
                continue
            previous = resolved
            series.append(_metric(base, resolved, options, defaults))
    return tuple(series)


def _expression(base: MetricSeries, options: Mapping[str, Any]) -> MetricSeries:
    period = options.get("period")
    return replace(
        base,
        label=str(options.get("label") or options.get("id") or options["expression"]),
        expression=options["expression"],
        period=period if isinstance(period, int) else None,
    )


def _metric(
    base: MetricSeries, resolved: list[str], options: Mapping[str, Any], defaults: _WidgetDefaults
) -> MetricSeries:
    namespace, metric_name, *pairs = resolved
    stat = options.get("stat", defaults.stat)
    period = options.get("period", defaults.period)
    return replace(
        base,
        label=str(options.get("label") or metric_name),
        namespace=namespace,
        metric_name=metric_name,
        dimensions=tuple(zip(pairs[0::2], pairs[1::2], strict=True)),
        stat=str(stat),
        period=period if isinstance(period, int) else None,
        error=_stat_problem(stat) or _period_problem(period),
    )


def _resolve_fields(fields: list[str], previous: list[str]) -> tuple[list[str], str | None]:
    """Expand "." and a leading "..." against the previous metric row; (fields, problem)."""
    if fields and fields[0] == REST_OF_PREVIOUS:
        rest = fields[1:]
        if not previous or len(rest) > len(previous):
            return [], '"..." with no previous metric row to repeat'
        fields = previous[: len(previous) - len(rest)] + rest
    resolved = []
    for position, value in enumerate(fields):
        if value != SAME_AS_PREVIOUS:
            resolved.append(value)
        elif position < len(previous):
            resolved.append(previous[position])
        else:
            return [], f'"." at position {position} with no previous value there'

    if len(resolved) < 2:
        return [], "a metric row needs a namespace and a metric name"
    if len(resolved) % 2:
        return [], "dimension names and values do not pair up"
    return resolved, None


def _stat_problem(stat: Any) -> str | None:
    if isinstance(stat, str) and (stat in _BASIC_STATS or _EXTENDED_STAT.match(stat)):
        return None
    return f"unknown statistic {stat!r}"


def _period_problem(period: Any) -> str | None:
    # Valid periods: 1, 5, 10, 30 (high resolution) and any multiple of 60.
    if (
        isinstance(period, int)
        and not isinstance(period, bool)
        and (period in (1, 5, 10, 30) or (period > 0 and period % 60 == 0))
    ):
        return None
    return f"invalid period {period!r} (1, 5, 10, 30 or a multiple of 60)"


def _horizontal_annotations(raw: Any) -> tuple[HorizontalAnnotation, ...]:
    annotations = []
    for item in raw if isinstance(raw, list) else []:
        # A band is a pair; both edges are drawn as lines.
        for edge in item if isinstance(item, list) else [item]:
            if not isinstance(edge, Mapping) or edge.get("visible") is False:
                continue
            value = edge.get("value")
            if isinstance(value, int | float) and not isinstance(value, bool):
                annotations.append(
                    HorizontalAnnotation(
                        value=float(value),
                        label=_optional_str(edge.get("label")),
                        color=_optional_str(edge.get("color")),
                        y_axis="right" if edge.get("yAxis") == "right" else "left",
                    )
                )
    return tuple(annotations)


def _layout(raw: Mapping[str, Any]) -> Layout:
    def size(name: str, low: int, high: int) -> int:
        value = raw.get(name, DEFAULT_SIZE)
        return min(max(value, low), high) if isinstance(value, int) else DEFAULT_SIZE

    x, y = raw.get("x"), raw.get("y")
    placed = isinstance(x, int) and isinstance(y, int)
    return Layout(
        x=min(max(x, 0), GRID_COLUMNS - 1) if placed and isinstance(x, int) else None,
        y=max(y, 0) if placed and isinstance(y, int) else None,
        width=size("width", 1, GRID_COLUMNS),
        height=size("height", 1, 1000),
    )


def is_query_id(value: str) -> bool:
    """GetMetricData's Id rule: a lowercase letter, then letters, digits and underscores."""
    return bool(_QUERY_ID.match(value))


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _is_str_list(value: Any) -> bool:
    return (
        isinstance(value, Sequence) and not isinstance(value, str) and all(isinstance(v, str) for v in value)
    )
