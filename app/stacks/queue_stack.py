"""Messaging and state: the key, the queues (main, DLQ, quarantine), the tables and the failure switch."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from app.config import StageConfig
from app.constructs.kms_key import stage_key
from app.constructs.nag import suppress
from app.constructs.sqs_with_dlq import SqsWithDlq, secure_queue
from functions.common import names


class QueueStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.outputs: dict[names.Output, CfnOutput] = {}
        self.key: kms.Key | None = stage_key(self, config)
        queues = SqsWithDlq(self, "Ingestion", config=config, key=self.key)
        self.queue, self.dlq = queues.queue, queues.dlq
        # Redrive storm protection: messages redriven maxRedrivesPerMessage times park here instead
        # of looping DLQ -> main -> DLQ; only an operator moves them on.
        self.quarantine_queue = secure_queue(
            self,
            "QuarantineQueue",
            queue_name=f"{config.prefix}-quarantine",
            retention=Duration.days(14),
            key=self.key,
            max_message_size_bytes=config.max_message_size_bytes,
        )
        reason = (
            "the quarantine is the terminal parking queue of redrive storm protection; it has no consumer"
        )
        suppress(self.quarantine_queue, "AwsSolutions-SQS3", reason)
        suppress(self.quarantine_queue, "Serverless-SQSRedrivePolicy", reason)

        self.state_table = self._table(
            config,
            "StateTable",
            table_name=f"ingestion_state-{config.env_name}",
            partition_key=names.STATE_TABLE_PARTITION_KEY,
            ttl_attribute=names.STATE_TABLE_TTL_ATTRIBUTE,
        )
        self.jobs_table = self._table(
            config,
            "RedriveJobsTable",
            table_name=f"redrive_jobs-{config.env_name}",
            partition_key=names.REDRIVE_JOBS_PARTITION_KEY,
            ttl_attribute=names.REDRIVE_JOBS_TTL_ATTRIBUTE,
        )
        self.failure_mode_parameter = ssm.StringParameter(
            self,
            "FailureModeParameter",
            parameter_name=names.FAILURE_MODE_PARAMETER,
            string_value=names.FailureMode.NONE.value,
            description="Break/fix lab switch: a failure mode, or JSON {mode, expiresAt, setBy}",
            tier=ssm.ParameterTier.STANDARD,
        )

        for output, value in (
            (names.Output.QUEUE_URL, self.queue.queue_url),
            (names.Output.QUEUE_NAME, self.queue.queue_name),
            (names.Output.DLQ_URL, self.dlq.queue_url),
            (names.Output.DLQ_NAME, self.dlq.queue_name),
            (names.Output.QUARANTINE_QUEUE_URL, self.quarantine_queue.queue_url),
            (names.Output.TABLE_NAME, self.state_table.table_name),
            (names.Output.REDRIVE_JOBS_TABLE_NAME, self.jobs_table.table_name),
        ):
            self.outputs[output] = CfnOutput(self, output.value, value=value)

    def _table(
        self,
        config: StageConfig,
        construct_id: str,
        *,
        table_name: str,
        partition_key: str,
        ttl_attribute: str,
    ) -> dynamodb.Table:
        return dynamodb.Table(
            self,
            construct_id,
            table_name=table_name,
            partition_key=dynamodb.Attribute(name=partition_key, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=ttl_attribute,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=(
                dynamodb.TableEncryption.CUSTOMER_MANAGED
                if self.key
                else dynamodb.TableEncryption.AWS_MANAGED
            ),
            encryption_key=self.key,
            deletion_protection=config.deletion_protection,
            removal_policy=RemovalPolicy.RETAIN if config.deletion_protection else RemovalPolicy.DESTROY,
        )
