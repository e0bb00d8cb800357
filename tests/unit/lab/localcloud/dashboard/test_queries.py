"""A refresh costs as few calls as CloudWatch's limits allow: GetMetricData takes up to 500 queries,
DescribeAlarms up to 100 alarm names (CloudWatch API Reference, GetMetricData and DescribeAlarms)."""

from __future__ import annotations

from typing import Any

import pytest

from lab.localcloud.dashboard.queries import (
    MAX_ALARM_NAMES_PER_CALL,
    MAX_QUERIES_PER_CALL,
    alarm_name,
    plan_alarms,
    plan_metric_data,
)
from lab.localcloud.dashboard.widgets import parse_body

REGION = "us-east-1"


def widget_of(count: int, *, first: int = 0) -> dict[str, Any]:
    rows = [["Lab", "Metric", "Index", str(first + n), {"stat": "Sum", "period": 60}] for n in range(count)]
    return {"type": "metric", "properties": {"region": REGION, "metrics": rows}}


def test_queries_of_every_widget_share_calls_of_at_most_500() -> None:
    # 1,200 series over 3 widgets: three calls (500, 500, 200), not one per widget nor one per metric.
    dashboard = parse_body(
        {"widgets": [widget_of(400), widget_of(400, first=400), widget_of(400, first=800)]},
        default_region=REGION,
    )
    calls = plan_metric_data(dashboard)
    assert [len(call.queries) for call in calls] == [MAX_QUERIES_PER_CALL, MAX_QUERIES_PER_CALL, 200]
    ids = [query["Id"] for call in calls for query in call.queries]
    assert len(set(ids)) == 1200
    # Every query id leads back to its widget and row.
    assert calls[1].refs["w1_s100"].widget == 1
    assert calls[1].refs["w1_s100"].series == "s100"


def test_alarms_are_asked_by_name_in_batches_of_100_per_region() -> None:
    arns = [f"arn:aws:cloudwatch:{REGION}:000000000000:alarm:a-{n}" for n in range(250)]
    dashboard = parse_body(
        {
            "widgets": [
                {"type": "alarm", "properties": {"alarms": arns[:100]}},
                {"type": "alarm", "properties": {"alarms": [*arns[50:250], "not-an-arn"]}},
                {"type": "alarm", "properties": {"alarms": ["arn:aws:cloudwatch:eu-west-1:1:alarm:far"]}},
            ]
        },
        default_region=REGION,
    )
    calls, problems = plan_alarms(dashboard)
    assert [(c.region, len(c.names)) for c in calls] == [
        (REGION, MAX_ALARM_NAMES_PER_CALL),
        (REGION, MAX_ALARM_NAMES_PER_CALL),
        (REGION, 50),
        ("eu-west-1", 1),
    ]
    assert list(problems) == ["not-an-arn"]


@pytest.mark.parametrize(
    ("arn", "name"),
    [
        (
            "arn:aws:cloudwatch:us-east-1:000000000000:alarm:ingestion-dev-dlq-depth",
            "ingestion-dev-dlq-depth",
        ),
        ("arn:aws:cloudwatch:us-east-1:000000000000:alarm:with:colons", "with:colons"),
    ],
)
def test_alarm_names_come_from_the_arn(arn: str, name: str) -> None:
    assert alarm_name(arn) == name


def test_an_arn_of_something_else_is_refused() -> None:
    with pytest.raises(ValueError, match="not a CloudWatch alarm ARN"):
        alarm_name("arn:aws:sqs:us-east-1:000000000000:queue")
