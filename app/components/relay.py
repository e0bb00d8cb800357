"""The event relay: the state table's stream -> the relay function -> the event bus.

Events derive from committed state (issue 11, item 6): every INFLIGHT -> SUCCEEDED / FAILED change
of a record is one stream record, and the relay publishes its outcome; a crash anywhere between the
worker's write and EventBridge only delays an event, the stream keeps it (functions/relay).

What the mapping relies on, per the AWS documentation:
- DynamoDB Streams: each stream record appears exactly once, the records of one item in the order
  of its modifications, kept 24 hours (Amazon DynamoDB Developer Guide, "Change data capture for
  DynamoDB Streams"); NEW_AND_OLD_IMAGES carries the record before and after each change.
- Lambda event filtering on the `dynamodb` key drops every change that is not an outcome before
  an invocation (AWS Lambda Developer Guide, "Using event filtering with a DynamoDB event source").
- Partial batch response (ReportBatchItemFailures): the relay answers the first record whose event
  EventBridge refused, Lambda checkpoints there and retries from it; with BisectBatchOnFunctionError
  a failed invocation's batch is split in two, which consumes no retry ("Configuring partial batch
  response with DynamoDB and Lambda"; "Retaining discarded batch records for a DynamoDB event
  source in Lambda").
- After MaximumRetryAttempts, or once a record is older than MaximumRecordAgeInSeconds, Lambda
  sends an invocation record (DDBStreamBatchInfo: shard, first and last sequence numbers) to the
  on-failure destination and moves on; the relay replays such a record on demand
  (ops/runbooks/event-relay.md). The record age limit is kept well inside the stream's 24 hours so
  an operator has the rest of the day to replay.
"""

from __future__ import annotations

import json

import jsii
from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from app.constructs.lambda_fn import SEND, FunctionSettings, LambdaFn
from functions.common import names
from functions.relay.outcomes import OUTCOME_FILTER_PATTERN

# Records per invocation, the most a DynamoDB stream mapping takes: what the window gathers goes out
# in full PutEvents chunks of 10 (the floor: 0.1 PutEvents per event).
RELAY_BATCH_SIZE = 1000
# Lambda gathers records this long before invoking, so PutEvents carries full chunks under load.
RELAY_BATCHING_WINDOW = Duration.seconds(1)
# Retries of a batch that still fails (bisections excluded) before it goes to the on-failure queue.
RELAY_RETRY_ATTEMPTS = 10
# Leaves 18 of the stream's 24 hours to replay a batch the mapping gave up on.
RELAY_MAX_RECORD_AGE = Duration.hours(6)
RELAY_TIMEOUT_SECONDS = 60


@jsii.implements(lambda_.IEventSourceDlq)
class _OnFailureQueue:
    """The mapping's on-failure destination, granted by hand: CDK's SqsDlq grants the whole
    grantSendMessages set (sqs:GetQueueAttributes/GetQueueUrl, kms:ReEncrypt*/GenerateDataKey*);
    Lambda sends the record with the function's role and needs sqs:SendMessage and the key."""

    def __init__(self, queue: sqs.IQueue, function: LambdaFn) -> None:
        self._queue = queue
        self._function = function

    def bind(
        self, target: lambda_.IEventSourceMapping, target_handler: lambda_.IFunction
    ) -> lambda_.DlqDestinationConfig:
        self._function.grant_queue(SEND, self._queue)
        return lambda_.DlqDestinationConfig(destination=self._queue.queue_arn)


class RelayFunction(LambdaFn):
    """The relay function and its DynamoDB stream event source mapping."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: FunctionSettings,
        state_table: dynamodb.ITable,
        bus: events.IEventBus,
        failure_queue: sqs.IQueue,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            settings=functions,
            name="relay",
            handler=names.Handler.RELAY,
            description="Publishes each settled record's outcome from the state table's stream to the bus",
            timeout_seconds=RELAY_TIMEOUT_SECONDS,
            environment={names.EnvVar.EVENT_BUS_NAME: bus.event_bus_name},
        )
        stream_arn = state_table.table_stream_arn
        if stream_arn is None:
            raise ValueError("the relay reads the state table's stream: create the table with one")
        self.allow(["events:PutEvents"], [bus.event_bus_arn])
        # What the mapping reads the stream with, and the relay itself when it replays a batch
        # (Amazon DynamoDB Developer Guide, "IAM policy to allow an AWS Lambda function to access
        # DynamoDB stream records").
        self.allow(
            [
                "dynamodb:DescribeStream",
                "dynamodb:GetRecords",
                "dynamodb:GetShardIterator",
                "dynamodb:ListStreams",
            ],
            [stream_arn],
        )
        # Stream records are encrypted with the table's key.
        self._grant_key(state_table.encryption_key, ("kms:Decrypt",))
        self.event_source = lambda_.EventSourceMapping(
            self,
            "EventSource",
            target=self.function,
            event_source_arn=stream_arn,
            # From the oldest record the stream holds: nothing written before the mapping existed
            # (a first deployment, a re-created mapping) is skipped.
            starting_position=lambda_.StartingPosition.TRIM_HORIZON,
            batch_size=RELAY_BATCH_SIZE,
            max_batching_window=RELAY_BATCHING_WINDOW,
            filters=[{"pattern": json.dumps(OUTCOME_FILTER_PATTERN)}],
            report_batch_item_failures=True,
            bisect_batch_on_error=True,
            retry_attempts=RELAY_RETRY_ATTEMPTS,
            max_record_age=RELAY_MAX_RECORD_AGE,
            on_failure=_OnFailureQueue(failure_queue, self),
        )
