"""Queues on a bare Stack: encryption by writer, TLS only, the queue with its DLQ, parking queues."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_kms as kms

from app.constructs.queues import QueueWithDlq, Writers, parking_queue, secure_queue
from tests.infra.bare_stack import BareStack

TLS_ONLY = {"Bool": {"aws:SecureTransport": "false"}}


def test_a_secure_queue_is_encrypted_for_its_writers_and_refuses_plain_http(bare: BareStack) -> None:
    key = kms.Key(bare.stack, "Key")
    own = secure_queue(bare.stack, "Own", queue_name="own", retention=Duration.days(1), key=None)
    services = secure_queue(
        bare.stack,
        "Services",
        queue_name="svc",
        retention=Duration.days(1),
        key=None,
        writers=Writers.AWS_SERVICES,
    )
    cmk = secure_queue(bare.stack, "Cmk", queue_name="cmk", retention=Duration.days(1), key=key)
    assert bare.props(own)["KmsMasterKeyId"] == "alias/aws/sqs"
    assert bare.props(services)["SqsManagedSseEnabled"] is True
    assert bare.ref(bare.props(cmk)["KmsMasterKeyId"]) == bare.arn(key)
    protected = {
        queue["Ref"]
        for policy in bare.resources("AWS::SQS::QueuePolicy").values()
        if any(
            s["Effect"] == "Deny" and s["Condition"] == TLS_ONLY
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
        )
        for queue in policy["Properties"]["Queues"]
    }
    assert protected == {bare.logical_id(q) for q in (own, services, cmk)}


def test_a_queue_with_its_dlq(bare: BareStack) -> None:
    queues = QueueWithDlq(
        bare.stack,
        "Q",
        queue_name="ingestion-test-events",
        key=None,
        visibility_timeout_seconds=182,
        retention_days=4,
        max_receive_count=5,
        dlq_retention_days=14,
        dlq_visibility_timeout_seconds=300,
        max_message_size_bytes=262_144,
    )
    queue, dlq = bare.props(queues.queue), bare.props(queues.dlq)
    assert (queue["QueueName"], dlq["QueueName"]) == ("ingestion-test-events", "ingestion-test-events-dlq")
    assert queue["VisibilityTimeout"] == 182
    assert (queue["MessageRetentionPeriod"], dlq["MessageRetentionPeriod"]) == (4 * 86_400, 14 * 86_400)
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 5
    assert bare.ref(queue["RedrivePolicy"]["deadLetterTargetArn"]) == bare.arn(queues.dlq)
    assert dlq["VisibilityTimeout"] == 300
    assert queue["MaximumMessageSize"] == dlq["MaximumMessageSize"] == 262_144


def test_a_parking_queue_keeps_messages_fourteen_days_and_has_no_dlq(bare: BareStack) -> None:
    queue = parking_queue(
        bare.stack, "Park", queue_name="park", key=None, reason="a terminal queue, for the test"
    )
    props = bare.props(queue)
    assert props["MessageRetentionPeriod"] == 14 * 86_400
    assert "RedrivePolicy" not in props
