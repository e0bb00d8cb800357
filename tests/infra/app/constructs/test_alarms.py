"""The alarm factory on a bare Stack: name, period, evaluation, notifications and runbook link."""

from __future__ import annotations

from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sns as sns

from app.constructs.alarms import AlarmFactory, AlarmSpec
from tests.infra.bare_stack import BareStack


def test_every_alarm_notifies_on_alarm_and_ok_and_links_its_runbook(bare: BareStack) -> None:
    topic = sns.Topic(bare.stack, "Topic")
    factory = AlarmFactory(
        bare.stack,
        "Alarms",
        name_prefix="ingestion-test",
        period_seconds=30,
        evaluation_periods=4,
        runbooks_url="https://example.com/runbooks",
        topic=topic,
    )
    metric = cloudwatch.Metric(namespace="N", metric_name="M", statistic="Maximum")
    alarm = factory.create(AlarmSpec("thing-broke", metric, 2, "The thing broke", "thing"))
    assert factory.alarms == {"thing-broke": alarm}
    props = bare.props(alarm)
    assert props["AlarmName"] == "ingestion-test-thing-broke"
    assert (props["Period"], props["EvaluationPeriods"], props["DatapointsToAlarm"]) == (30, 4, 4)
    assert (props["Threshold"], props["ComparisonOperator"]) == (2, "GreaterThanThreshold")
    assert props["TreatMissingData"] == "notBreaching"
    assert props["AlarmActions"] == props["OKActions"] == [{"Ref": bare.logical_id(topic)}]
    assert props["AlarmDescription"] == (
        "The thing broke (threshold 2 over 120 s). Runbook: https://example.com/runbooks/thing.md"
    )
