"""What the component tests build their components on: the queues, table, bus and switch a stage
would pass them, on the same bare Stack."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs

from app.components.failure_switch import FailureSwitch, failure_mode_parameter
from app.constructs.queues import QueueWithDlq
from app.constructs.tables import durable_table
from tests.infra.bare_stack import ACCOUNT, REGION, BareStack


@dataclass
class Neighbours:
    key: kms.IKey | None
    queue: sqs.IQueue
    dlq: sqs.IQueue
    table: dynamodb.ITable
    bus: events.IEventBus
    switch: FailureSwitch

    def parameter_arn(self, bare: BareStack) -> str:
        return f"arn:AWS::Partition:ssm:{REGION}:{ACCOUNT}:parameter{bare.logical_id(self.switch.parameter)}"


def neighbours(bare: BareStack, *, encrypted: bool = False) -> Neighbours:
    key = kms.Key(bare.stack, "Key") if encrypted else None
    queues = QueueWithDlq(
        bare.stack,
        "Queues",
        queue_name="ingestion-test-events",
        key=key,
        visibility_timeout_seconds=182,
        retention_days=4,
        max_receive_count=5,
        dlq_retention_days=14,
        dlq_visibility_timeout_seconds=300,
        max_message_size_bytes=262_144,
    )
    table = durable_table(
        bare.stack,
        "State",
        table_name="state-test",
        partition_key="pk",
        ttl_attribute="ttl",
        key=key,
        protect=False,
    )
    switch = FailureSwitch(
        parameter=failure_mode_parameter(bare.stack, "Switch"),
        cache_seconds=5,
        injection_enabled=True,
        max_ttl_seconds=900,
    )
    return Neighbours(key, queues.queue, queues.dlq, table, events.EventBus(bare.stack, "Bus"), switch)
