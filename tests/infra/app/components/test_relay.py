"""The relay component on a bare Stack: its DynamoDB stream mapping (the settings the relay relies
on, each from the AWS Lambda Developer Guide), its grants, and the state table's stream."""

from __future__ import annotations

import json

import pytest
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs

from app.components.relay import RELAY_MAX_RECORD_AGE, RelayFunction
from app.constructs.queues import parking_queue
from app.constructs.tables import durable_table
from functions.common import names
from functions.relay.outcomes import OUTCOME_FILTER_PATTERN
from tests.infra.bare_stack import FUNCTIONS, BareStack

# DynamoDB Streams keeps a record 24 hours (Amazon DynamoDB Developer Guide, "Change data capture
# for DynamoDB Streams").
STREAM_RETENTION_SECONDS = 24 * 3600


def relay(
    bare: BareStack, *, encrypted: bool = False
) -> tuple[RelayFunction, dynamodb.Table, events.EventBus, sqs.Queue]:
    key = kms.Key(bare.stack, "Key") if encrypted else None
    table = durable_table(
        bare.stack,
        "State",
        table_name="state-test",
        partition_key="idempotencyKey",
        ttl_attribute="expiresAt",
        key=key,
        protect=False,
        stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
    )
    bus = events.EventBus(bare.stack, "Bus")
    failures = parking_queue(bare.stack, "Failures", queue_name="relay-failures", key=key, reason="test")
    component = RelayFunction(
        bare.stack, "Relay", functions=FUNCTIONS, state_table=table, bus=bus, failure_queue=failures
    )
    return component, table, bus, failures


def test_the_state_table_streams_each_change_with_both_images(bare: BareStack) -> None:
    _, table, _, _ = relay(bare)
    assert bare.props(table)["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_the_mapping_reads_the_stream_filtered_partial_bisected_bounded_with_an_on_failure_queue(
    bare: BareStack,
) -> None:
    component, table, _, failures = relay(bare)
    mapping = bare.props(component.event_source)
    assert bare.ref(mapping["EventSourceArn"]) == f"{bare.logical_id(table)}.StreamArn"
    assert bare.ref(mapping["FunctionName"]) == bare.logical_id(component.function)
    # Nothing the stream still holds is skipped, whenever the mapping was created.
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert (mapping["BatchSize"], mapping["MaximumBatchingWindowInSeconds"]) == (1000, 1)
    # Only outcomes reach the function ("Using event filtering with a DynamoDB event source").
    [only] = mapping["FilterCriteria"]["Filters"]
    assert json.loads(only["Pattern"]) == OUTCOME_FILTER_PATTERN
    # The first refused record is the checkpoint ("Configuring partial batch response with DynamoDB
    # and Lambda"); a failed invocation's batch is halved, which consumes no retry.
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    # Given up only after 10 retries or 6 hours, into a queue, while the stream still holds the
    # records ("Retaining discarded batch records for a DynamoDB event source in Lambda").
    assert mapping["MaximumRetryAttempts"] == 10
    assert mapping["MaximumRecordAgeInSeconds"] == RELAY_MAX_RECORD_AGE.to_seconds()
    assert RELAY_MAX_RECORD_AGE.to_seconds() <= STREAM_RETENTION_SECONDS / 4
    assert bare.ref(mapping["DestinationConfig"]["OnFailure"]["Destination"]) == bare.arn(failures)
    assert mapping.get("ParallelizationFactor", 1) == 1  # one invocation per shard: stream order


@pytest.mark.parametrize("encrypted", [False, True])
def test_the_relay_publishes_reads_its_stream_and_sends_given_up_batches(
    bare: BareStack, encrypted: bool
) -> None:
    component, table, bus, failures = relay(bare, encrypted=encrypted)
    stream = f"{bare.logical_id(table)}.StreamArn"
    expected = {
        (frozenset({"events:PutEvents"}), frozenset({bare.arn(bus)})),
        (
            frozenset(
                {
                    "dynamodb:DescribeStream",
                    "dynamodb:GetRecords",
                    "dynamodb:GetShardIterator",
                    "dynamodb:ListStreams",
                }
            ),
            frozenset({stream}),
        ),
        (frozenset({"sqs:SendMessage"}), frozenset({bare.arn(failures)})),
    }
    if encrypted:
        assert table.encryption_key is not None
        key = f"{bare.logical_id(table.encryption_key)}.Arn"
        expected |= {
            # the stream's records, encrypted with the table's key
            (frozenset({"kms:Decrypt"}), frozenset({key})),
            # the on-failure record, sent to a queue encrypted with the same key
            (frozenset({"kms:GenerateDataKey", "kms:Decrypt"}), frozenset({key})),
        }
    assert bare.grants(component) == expected
    env = bare.props(component.function)["Environment"]["Variables"]
    assert bare.ref(env[names.EnvVar.EVENT_BUS_NAME.value]) == bare.logical_id(bus)
    assert bare.props(component.function)["Handler"] == names.Handler.RELAY.value


def test_a_table_without_a_stream_is_refused(bare: BareStack) -> None:
    table = durable_table(
        bare.stack,
        "Plain",
        table_name="plain",
        partition_key="pk",
        ttl_attribute="ttl",
        key=None,
        protect=False,
    )
    failures = parking_queue(bare.stack, "Failures", queue_name="relay-failures", key=None, reason="test")
    with pytest.raises(ValueError, match="stream"):
        RelayFunction(
            bare.stack,
            "Relay",
            functions=FUNCTIONS,
            state_table=table,
            bus=events.EventBus(bare.stack, "Bus"),
            failure_queue=failures,
        )
