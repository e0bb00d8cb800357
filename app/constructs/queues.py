"""Encrypted, TLS-only SQS queues: a queue with its dead-letter queue, parking queues, single queues."""

from __future__ import annotations

from enum import Enum

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from app.constructs.nag import suppress


class Writers(Enum):
    """Who sends to a queue decides which keys can encrypt it."""

    # Only our own principals: the AWS-managed alias/aws/sqs key (the specification's default).
    OWN_PRINCIPALS = "own"
    # AWS services (SNS, EventBridge) send: they cannot use alias/aws/sqs, so SSE-SQS unless a CMK.
    AWS_SERVICES = "services"


def secure_queue(
    scope: Construct,
    construct_id: str,
    *,
    queue_name: str,
    retention: Duration,
    key: kms.IKey | None,
    writers: Writers = Writers.OWN_PRINCIPALS,
    visibility_timeout: Duration | None = None,
    max_message_size_bytes: int | None = None,
    dead_letter_queue: sqs.DeadLetterQueue | None = None,
) -> sqs.Queue:
    """One standard queue, encrypted at rest and refusing any request not sent over TLS."""
    if key is not None:
        encryption, master_key = sqs.QueueEncryption.KMS, key
    elif writers is Writers.AWS_SERVICES:
        encryption, master_key = sqs.QueueEncryption.SQS_MANAGED, None
    else:
        encryption, master_key = sqs.QueueEncryption.KMS_MANAGED, None
    return sqs.Queue(
        scope,
        construct_id,
        queue_name=queue_name,
        encryption=encryption,
        encryption_master_key=master_key,
        # Reuse of the data key keeps KMS calls (and cost) down without weakening encryption.
        data_key_reuse=Duration.minutes(5) if encryption is not sqs.QueueEncryption.SQS_MANAGED else None,
        enforce_ssl=True,
        retention_period=retention,
        visibility_timeout=visibility_timeout,
        max_message_size_bytes=max_message_size_bytes,
        dead_letter_queue=dead_letter_queue,
        removal_policy=RemovalPolicy.DESTROY,
    )


class QueueWithDlq(Construct):
    """A queue and its dead-letter queue. The DLQ keeps messages longer than the queue (validated in
    the stage configuration) so that a message is never lost between dead-lettering and redrive."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        queue_name: str,
        key: kms.IKey | None,
        visibility_timeout_seconds: int,
        retention_days: int,
        max_receive_count: int,
        dlq_retention_days: int,
        dlq_visibility_timeout_seconds: int,
        max_message_size_bytes: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.queue_name, self.dlq_name = queue_name, f"{queue_name}-dlq"
        self.dlq = secure_queue(
            self,
            "DeadLetterQueue",
            queue_name=self.dlq_name,
            retention=Duration.days(dlq_retention_days),
            key=key,
            max_message_size_bytes=max_message_size_bytes,
            visibility_timeout=Duration.seconds(dlq_visibility_timeout_seconds),
        )
        suppress(
            self.dlq, "Serverless-SQSRedrivePolicy", "this queue is the dead-letter queue of the main queue"
        )
        self.queue = secure_queue(
            self,
            "Queue",
            queue_name=queue_name,
            retention=Duration.days(retention_days),
            key=key,
            visibility_timeout=Duration.seconds(visibility_timeout_seconds),
            max_message_size_bytes=max_message_size_bytes,
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dlq, max_receive_count=max_receive_count),
        )


def parking_queue(
    scope: Construct,
    construct_id: str,
    *,
    queue_name: str,
    key: kms.IKey | None,
    reason: str,
    writers: Writers = Writers.OWN_PRINCIPALS,
    max_message_size_bytes: int | None = None,
) -> sqs.Queue:
    """A terminal queue kept 14 days (the SQS maximum) that nothing consumes automatically: a
    dead-letter queue itself, or a queue an operator or a drill reads; `reason` says which."""
    queue = secure_queue(
        scope,
        construct_id,
        queue_name=queue_name,
        retention=Duration.days(14),
        key=key,
        writers=writers,
        max_message_size_bytes=max_message_size_bytes,
    )
    suppress(queue, "AwsSolutions-SQS3", reason)
    suppress(queue, "Serverless-SQSRedrivePolicy", reason)
    return queue
