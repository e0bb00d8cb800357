"""The alarm topic and the alarm table on a bare Stack."""

from __future__ import annotations

from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs

from app.components.alarms import FIS_STOP_ALARMS, AlarmTopic, stage_alarms
from app.config import AlarmSettings
from tests import REPO_ROOT
from tests.infra.bare_stack import BareStack


def test_without_people_to_notify_the_topic_has_its_inbox_and_no_notification_dlq(bare: BareStack) -> None:
    """The inbox is always there: the drills (the pipeline's gameday too) read notifications from it."""
    alarms = AlarmTopic(
        bare.stack, "Alarms", stage_prefix="ingestion-test", key=None, email=None, webhook_url=None
    )
    (topic,) = bare.resources("AWS::SNS::Topic").values()
    assert topic["Properties"]["TopicName"] == "ingestion-test-alarms"
    (queue,) = bare.resources("AWS::SQS::Queue").values()
    assert queue["Properties"]["QueueName"] == "ingestion-test-alarm-inbox"
    assert queue["Properties"]["SqsManagedSseEnabled"] is True  # SNS cannot use alias/aws/sqs
    (subscription,) = bare.resources("AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "sqs"
    assert bare.ref(subscription["Properties"]["Endpoint"]) == bare.arn(alarms.inbox)
    # SNS may deliver into it, for this topic only (the policy CDK's SqsSubscription writes).
    (policy,) = bare.resources("AWS::SQS::QueuePolicy").values()
    delivery = [
        st
        for st in policy["Properties"]["PolicyDocument"]["Statement"]
        if st.get("Principal") == {"Service": "sns.amazonaws.com"}
    ]
    assert [st["Action"] for st in delivery] == ["sqs:SendMessage"]
    # Ref of a topic is its ARN.
    assert bare.ref(delivery[0]["Condition"]["ArnEquals"]["aws:SourceArn"]) == bare.logical_id(alarms.topic)


def test_subscribers_keep_rejected_notifications_in_a_dlq(bare: BareStack) -> None:
    AlarmTopic(
        bare.stack, "Alarms", stage_prefix="ingestion-test", key=None, email="a@example.com",
        webhook_url="https://hooks.example.com/x",
    )  # fmt: skip
    (dlq_id,) = [
        queue_id
        for queue_id, queue in bare.resources("AWS::SQS::Queue").items()
        if queue["Properties"]["QueueName"] == "ingestion-test-alarm-notification-dlq"
    ]
    subscriptions = {
        (s["Properties"]["Protocol"], s["Properties"]["Endpoint"]): bare.ref(
            s["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]
        )
        for s in bare.resources("AWS::SNS::Subscription").values()
        if s["Properties"]["Protocol"] != "sqs"
    }
    assert subscriptions == {
        ("email", "a@example.com"): f"{dlq_id}.Arn",
        ("https", "https://hooks.example.com/x"): f"{dlq_id}.Arn",
    }


def test_the_table_has_one_row_per_alarm_each_with_an_existing_runbook(bare: BareStack) -> None:
    def fn(label: str) -> lambda_.Function:
        return lambda_.Function(
            bare.stack,
            label,
            runtime=lambda_.Runtime.PYTHON_3_13,
            handler="x.y",
            code=lambda_.Code.from_inline("x"),
        )

    thresholds = AlarmSettings(dlq_age_seconds=120, relay_iterator_age_seconds=90)
    specs = stage_alarms(
        queue=sqs.Queue(bare.stack, "Q"), dlq=sqs.Queue(bare.stack, "D"), worker=fn("W"), ingest=fn("I"),
        relay=fn("R"), relay_failures=sqs.Queue(bare.stack, "F"), thresholds=thresholds,
    )  # fmt: skip
    slugs = [spec.slug for spec in specs]
    assert len(slugs) == len(set(slugs)) == 13
    assert set(FIS_STOP_ALARMS) <= set(slugs)
    threshold_of = {spec.slug: spec.threshold for spec in specs}
    assert (threshold_of["dlq-age"], threshold_of["relay-iterator-age"]) == (120, 90_000)
    runbook_of = {spec.slug: spec.runbook for spec in specs}
    assert runbook_of["idempotency-conflicts"] == "idempotency-conflict"
    assert {runbook_of[slug] for slug in ("relay-failures", "relay-errors", "relay-iterator-age")} == {
        "event-relay"
    }
    for spec in specs:
        assert (REPO_ROOT / "ops" / "runbooks" / f"{spec.runbook}.md").is_file(), spec.runbook
