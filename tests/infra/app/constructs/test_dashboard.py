"""The dashboard on a bare Stack: one widget per queue and function, routing, lab metrics, alarms."""

from __future__ import annotations

import json

from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs

from app.constructs.dashboard import Dashboard
from functions.common import names
from tests.infra.bare_stack import BareStack


def test_the_dashboard_shows_each_queue_function_rule_and_alarm(bare: BareStack) -> None:
    queue = sqs.Queue(bare.stack, "Q")
    fn = lambda_.Function(
        bare.stack,
        "F",
        runtime=lambda_.Runtime.PYTHON_3_13,
        handler="x.y",
        code=lambda_.Code.from_inline("x"),
    )
    bus = events.EventBus(bare.stack, "Bus")
    rule = events.Rule(bare.stack, "R", event_bus=bus, event_pattern=events.EventPattern(source=["s"]))
    alarm = cloudwatch.Alarm(
        bare.stack, "A", metric=queue.metric_number_of_messages_sent(), threshold=1, evaluation_periods=1
    )
    dashboard = Dashboard(
        bare.stack,
        "D",
        dashboard_name="ingestion-test-dashboard",
        queues={"main": queue},
        functions={"probe": fn},
        bus=bus,
        rules={names.DetailType.SUCCESS: rule},
        alarms=[alarm],
    )
    props = bare.props(dashboard.dashboard)
    assert props["DashboardName"] == "ingestion-test-dashboard"
    body = json.dumps(props["DashboardBody"])
    for text in (
        "Queue main: visible / not visible / age of oldest",
        "Lambda probe: invocations / errors / throttles / duration p95",
        "MatchedEvents",
        names.MetricName.ERRORS_BY_TYPE.value,
        bare.logical_id(alarm),
    ):
        assert text in body, text
