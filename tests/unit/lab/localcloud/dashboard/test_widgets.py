"""Widget-to-query translation by the rules of "Dashboard Body Structure and Syntax" (CloudWatch API
Reference): every metric row becomes the GetMetricData query CloudWatch would run for it.

The stage's own synthesized body is translated in tests/infra/app/test_dashboard_rendering.py (it
needs the CDK synthesis of that tier)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lab.localcloud.dashboard.queries import plan_metric_data
from lab.localcloud.dashboard.widgets import (
    DEFAULT_PERIOD_S,
    AlarmStatusWidget,
    DashboardBodyError,
    MetricWidget,
    TextWidget,
    UnsupportedWidget,
    parse_body,
)

REGION = "us-east-1"
QUEUE = ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "ingestion-dev-events-dlq"]


def metric_widget(metrics: list[Any], **properties: Any) -> dict[str, Any]:
    return {
        "type": "metric",
        "x": 0,
        "y": 0,
        "width": 8,
        "height": 6,
        "properties": {"metrics": metrics, "region": REGION, **properties},
    }


def queries_of(*widgets: dict[str, Any]) -> list[dict[str, Any]]:
    dashboard = parse_body(json.dumps({"widgets": list(widgets)}), default_region=REGION)
    return [query for call in plan_metric_data(dashboard) for query in call.queries]


def test_a_metric_row_becomes_its_metric_stat_with_dimensions_stat_and_period() -> None:
    (query,) = queries_of(metric_widget([[*QUEUE, {"stat": "Maximum", "period": 60, "label": "visible"}]]))
    assert query == {
        "Id": "w0_s0",
        "ReturnData": True,
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/SQS",
                "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [{"Name": "QueueName", "Value": "ingestion-dev-events-dlq"}],
            },
            "Period": 60,
            "Stat": "Maximum",
        },
    }


def test_without_options_the_widget_defaults_apply_then_cloudwatchs() -> None:
    widget_level = queries_of(metric_widget([QUEUE], stat="Sum", period=120))
    assert widget_level[0]["MetricStat"]["Stat"] == "Sum"
    assert widget_level[0]["MetricStat"]["Period"] == 120
    documented = queries_of(metric_widget([QUEUE]))
    assert documented[0]["MetricStat"]["Stat"] == "Average"
    assert documented[0]["MetricStat"]["Period"] == DEFAULT_PERIOD_S == 300


def test_a_row_of_dots_repeats_the_previous_rows_fields() -> None:
    queries = queries_of(
        metric_widget(
            [
                ["AWS/Lambda", "Invocations", "FunctionName", "ingest", {"stat": "Sum"}],
                [".", "Errors", ".", ".", {"stat": "Sum"}],
                ["...", "worker"],
            ]
        )
    )
    metrics = [q["MetricStat"]["Metric"] for q in queries]
    assert [(m["MetricName"], m["Dimensions"][0]["Value"]) for m in metrics] == [
        ("Invocations", "ingest"),
        ("Errors", "ingest"),
        ("Errors", "worker"),
    ]
    assert {m["Namespace"] for m in metrics} == {"AWS/Lambda"}


def test_percentiles_and_metrics_without_dimensions_pass_through() -> None:
    queries = queries_of(
        metric_widget(
            [["AWS/Lambda", "Duration", "FunctionName", "w", {"stat": "p95"}], ["Lab", "ProcessedTrue"]]
        )
    )
    assert queries[0]["MetricStat"]["Stat"] == "p95"
    assert "Dimensions" not in queries[1]["MetricStat"]["Metric"]


def test_axis_colour_label_and_hidden_series_are_rendering_not_queries() -> None:
    body = {
        "widgets": [
            metric_widget(
                [
                    [*QUEUE, {"yAxis": "right", "color": "#ff0000", "label": "depth"}],
                    [*QUEUE[:3], "other", {"visible": False}],
                ],
                stacked=True,
                view="timeSeries",
                yAxis={"left": {"min": 0}},
                annotations={
                    "horizontal": [{"value": 5, "label": "threshold"}, {"value": 9, "visible": False}]
                },
            )
        ]
    }
    dashboard = parse_body(body, default_region=REGION)
    (widget,) = dashboard.widgets
    assert isinstance(widget, MetricWidget)
    shown, hidden = widget.series
    assert (shown.y_axis, shown.color, shown.label) == ("right", "#ff0000", "depth")
    assert hidden.visible is False
    assert widget.stacked
    assert widget.y_axis == {"left": {"min": 0}}
    assert [a.value for a in widget.horizontal] == [5.0]
    (call,) = plan_metric_data(dashboard)
    # A hidden plain metric is never asked for: nothing on the widget can read it.
    assert [q["Id"] for q in call.queries] == ["w0_s0"]


def test_a_series_with_a_bad_statistic_or_period_is_reported_and_not_queried() -> None:
    dashboard = parse_body(
        {"widgets": [metric_widget([[*QUEUE, {"stat": "Median"}], [*QUEUE, {"period": 45}], QUEUE])]},
        default_region=REGION,
    )
    (widget,) = dashboard.widgets
    assert isinstance(widget, MetricWidget)
    assert [s.error for s in widget.series] == [
        "unknown statistic 'Median'",
        "invalid period 45 (1, 5, 10, 30 or a multiple of 60)",
        None,
    ]
    (call,) = plan_metric_data(dashboard)
    assert list(call.refs) == ["w0_s2"]


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ([".", "Errors"], '"." at position 0 with no previous value there'),
        (["AWS/SQS", "Visible", "QueueName"], "dimension names and values do not pair up"),
        (["AWS/SQS"], "a metric row needs a namespace and a metric name"),
        (["...", "q"], '"..." with no previous metric row to repeat'),
    ],
)
def test_malformed_rows_are_named_on_the_widget(row: list[str], problem: str) -> None:
    (widget,) = parse_body({"widgets": [metric_widget([row])]}, default_region=REGION).widgets
    assert isinstance(widget, MetricWidget)
    assert widget.series[0].error == problem


def test_a_widget_with_math_gets_a_call_of_its_own_with_the_authors_ids() -> None:
    dashboard = parse_body(
        {
            "widgets": [
                metric_widget([QUEUE]),
                metric_widget(
                    [
                        [*QUEUE, {"id": "m1", "visible": False}],
                        [*QUEUE[:3], "main", {"visible": False}],
                        [{"expression": "SUM(METRICS())", "label": "total", "id": "e1"}],
                    ]
                ),
            ]
        },
        default_region=REGION,
    )
    shared, own = plan_metric_data(dashboard)
    assert [q["Id"] for q in shared.queries] == ["w0_s0"]
    assert [q["Id"] for q in own.queries] == ["m1", "w1_s1", "e1"]
    # Inputs of the expression are fetched but not returned; the expression is.
    assert [q["ReturnData"] for q in own.queries] == [False, False, True]
    assert own.queries[2]["Expression"] == "SUM(METRICS())"


def test_each_region_is_asked_on_its_own() -> None:
    dashboard = parse_body(
        {"widgets": [metric_widget([QUEUE]), metric_widget([[*QUEUE, {"region": "eu-west-1"}]])]},
        default_region=REGION,
    )
    assert sorted(call.region for call in plan_metric_data(dashboard)) == ["eu-west-1", REGION]


def test_alarm_text_and_other_widgets() -> None:
    dashboard = parse_body(
        {
            "start": "-PT3H",
            "widgets": [
                {
                    "type": "alarm",
                    "properties": {"title": "Alarms", "alarms": ["arn:aws:cloudwatch:r:1:alarm:a"]},
                },
                {"type": "text", "width": 24, "height": 2, "properties": {"markdown": "# Title\nbody"}},
                {"type": "log", "properties": {"title": "errors", "query": "SOURCE 'x' | stats count()"}},
                {"type": "metric", "properties": {"title": "empty"}},
                "not a widget",
            ],
        },
        default_region=REGION,
    )
    alarm, text, log, empty, junk = dashboard.widgets
    assert isinstance(alarm, AlarmStatusWidget)
    assert alarm.alarm_arns == ("arn:aws:cloudwatch:r:1:alarm:a",)
    assert isinstance(text, TextWidget)
    assert text.markdown.startswith("# Title")
    assert (text.layout.width, text.layout.height, text.layout.x) == (24, 2, None)
    assert isinstance(log, UnsupportedWidget)
    assert "'log' widgets are not drawn" in log.reason
    assert isinstance(empty, UnsupportedWidget)
    assert empty.reason == "metric widget with no metrics"
    assert isinstance(junk, UnsupportedWidget)
    assert dashboard.start == "-PT3H"
    assert dashboard.alarm_arns() == ["arn:aws:cloudwatch:r:1:alarm:a"]


@pytest.mark.parametrize("body", ["not json", "[]", '{"widgets": {}}', "{}"])
def test_a_body_that_is_no_dashboard_is_refused(body: str) -> None:
    with pytest.raises(DashboardBodyError):
        parse_body(body, default_region=REGION)
