"""The stage's state: the key, the queues, the tables and the failure switch (everything a redeploy
must keep), apart from the stateless functions, API and observability."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_kms as kms
from constructs import Construct

from app.components.failure_switch import failure_mode_parameter
from app.components.redrive import RedriveStore
from app.config import StageConfig
from app.constructs.kms_key import stage_key
from app.constructs.queues import QueueWithDlq
from app.constructs.tables import durable_table
from functions.common import names


class StateStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.key: kms.Key | None = (
            stage_key(
                self,
                "StageKey",
                alias=config.resolved_kms_alias,
                stage_prefix=config.prefix,
                protect=config.deletion_protection,
            )
            if config.use_kms_cmk
            else None
        )
        self.ingestion = QueueWithDlq(
            self,
            "Ingestion",
            queue_name=f"{config.prefix}-events",
            key=self.key,
            visibility_timeout_seconds=config.visibility_timeout_seconds,
            retention_days=config.main_queue_retention_days,
            max_receive_count=config.max_receive_count,
            dlq_retention_days=config.dlq_retention_days,
            dlq_visibility_timeout_seconds=config.redrive_timeout_seconds,
            max_message_size_bytes=config.max_message_size_bytes,
        )
        self.state_table_name = f"ingestion_state-{config.env_name}"
        self.state_table = durable_table(
            self,
            "StateTable",
            table_name=self.state_table_name,
            partition_key=names.STATE_TABLE_PARTITION_KEY,
            ttl_attribute=names.STATE_TABLE_TTL_ATTRIBUTE,
            key=self.key,
            protect=config.deletion_protection,
        )
        self.redrive = RedriveStore(
            self,
            "Redrive",
            stage_prefix=config.prefix,
            jobs_table_name=f"redrive_jobs-{config.env_name}",
            key=self.key,
            max_message_size_bytes=config.max_message_size_bytes,
            protect=config.deletion_protection,
        )
        self.failure_mode_parameter = failure_mode_parameter(self, "FailureModeParameter")
        self.queue, self.dlq = self.ingestion.queue, self.ingestion.dlq
        self.quarantine_queue, self.jobs_table = self.redrive.quarantine_queue, self.redrive.jobs_table

        self.outputs: dict[names.Output, CfnOutput] = {
            output: CfnOutput(self, output.value, value=value)
            for output, value in (
                (names.Output.QUEUE_URL, self.queue.queue_url),
                (names.Output.QUEUE_NAME, self.queue.queue_name),
                (names.Output.DLQ_URL, self.dlq.queue_url),
                (names.Output.DLQ_NAME, self.dlq.queue_name),
                (names.Output.QUARANTINE_QUEUE_URL, self.quarantine_queue.queue_url),
                (names.Output.TABLE_NAME, self.state_table.table_name),
                (names.Output.REDRIVE_JOBS_TABLE_NAME, self.jobs_table.table_name),
            )
        }
