"""Encrypted, TLS-only SQS queues: the main queue with its DLQ, and single secure queues."""

from __future__ import annotations

from enum import Enum

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from app.config import StageConfig
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


class SqsWithDlq(Construct):
    """The ingestion queue and its dead-letter queue, sized from the stage configuration.

    The DLQ keeps messages longer than the main queue (dlqRetentionDays > mainQueueRetentionDays,
    validated in config) so that a message is never lost between dead-lettering and redrive.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, config: StageConfig, key: kms.IKey | None
    ) -> None:
        super().__init__(scope, construct_id)
        self.dlq = secure_queue(
            self,
            "DeadLetterQueue",
            queue_name=f"{config.prefix}-events-dlq",
            retention=Duration.days(config.dlq_retention_days),
            key=key,
            max_message_size_bytes=config.max_message_size_bytes,
            visibility_timeout=Duration.seconds(config.redrive_timeout_seconds),
        )
        suppress(
            self.dlq, "Serverless-SQSRedrivePolicy", "this queue is the dead-letter queue of the main queue"
        )
        self.queue = secure_queue(
            self,
            "Queue",
            queue_name=f"{config.prefix}-events",
            retention=Duration.days(config.main_queue_retention_days),
            key=key,
            visibility_timeout=Duration.seconds(config.visibility_timeout_seconds),
            max_message_size_bytes=config.max_message_size_bytes,
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dlq, max_receive_count=config.max_receive_count),
        )
