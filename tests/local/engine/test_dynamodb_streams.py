"""Engine conformance: what the engine does with a DynamoDB stream event source mapping, one
behaviour per test, each against what AWS documents.

The relay (functions/relay, app/components/relay.py) relies on, on AWS:
- the filter criteria: only outcomes reach it ("Using event filtering with a DynamoDB event
  source": DynamoDB mappings filter on the `dynamodb` key);
- a function error: the batch is retried and the checkpoint stays ("Retaining discarded batch
  records for a DynamoDB event source in Lambda");
- ReportBatchItemFailures: Lambda checkpoints at the lowest reported sequence number and retries
  from it ("Configuring partial batch response with DynamoDB and Lambda");
- BisectBatchOnFunctionError, MaximumRetryAttempts, MaximumRecordAgeInSeconds and the on-failure
  destination, which receives a DDBStreamBatchInfo record ("Retaining discarded batch records...");
- MaximumBatchingWindowInSeconds: records gathered up to the window before an invocation
  ("Lambda parameters for Amazon DynamoDB event source mappings").

Where the engine differs, the test says so and asserts what the engine does, so an engine upgrade
that closes the gap fails the test by name (and the lab's notes must change with it). The local
tier relies only on the behaviours the engine shares with AWS: filtering, and retrying a failed
invocation's batch whole.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from functions.relay.outcomes import OUTCOME_FILTER_PATTERN
from tests.local.conftest import LocalEngine

# Reports every batch it gets to a probe queue, then does what the records ask: a record whose new
# image has `behaviour` "raise" fails the invocation, "partial" is reported as a batch item failure.
PROBE_SOURCE = """
import json, os, boto3

def lambda_handler(event, context):
    records = event["Records"]
    keys = [r["dynamodb"]["Keys"]["pk"]["S"] for r in records]
    behaviours = [r["dynamodb"].get("NewImage", {}).get("behaviour", {}).get("S") for r in records]
    boto3.client("sqs").send_message(
        QueueUrl=os.environ["PROBE"],
        MessageBody=json.dumps({
            "keys": keys,
            "sequenceNumbers": [r["dynamodb"]["SequenceNumber"] for r in records],
            "statuses": [r["dynamodb"].get("NewImage", {}).get("status", {}).get("S") for r in records],
        }),
    )
    if "raise" in behaviours:
        raise RuntimeError("poison record in the batch")
    return {"batchItemFailures": [
        {"itemIdentifier": r["dynamodb"]["SequenceNumber"]}
        for r, behaviour in zip(records, behaviours) if behaviour == "partial"
    ]}
"""


class StreamProbe:
    """A table with a NEW_AND_OLD_IMAGES stream, a probe function mapped to it, and its probe queue."""

    def __init__(
        self, engine: LocalEngine, make_function: Callable[..., str], name: Callable[[str], str]
    ) -> None:
        self.dynamodb = engine.client("dynamodb")
        self.sqs = engine.client("sqs")
        self.lam = engine.client("lambda")
        self.table = name("stream")
        table = self.dynamodb.create_table(
            TableName=self.table,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )["TableDescription"]
        self.stream_arn = table["LatestStreamArn"]
        probe_name = name("probe")
        self.probe_url = self.sqs.create_queue(QueueName=probe_name)["QueueUrl"]
        probe_arn = self.sqs.get_queue_attributes(QueueUrl=self.probe_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.function = make_function(
            PROBE_SOURCE,
            environment={"PROBE": self.probe_url},
            policy={
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": probe_arn}],
            },
        )
        self.batches: list[dict[str, Any]] = []

    def put(self, key: str, status: str, behaviour: str = "ok") -> None:
        self.dynamodb.put_item(
            TableName=self.table,
            Item={"pk": {"S": key}, "status": {"S": status}, "behaviour": {"S": behaviour}},
        )

    def set_status(self, key: str, status: str) -> None:
        self.dynamodb.update_item(
            TableName=self.table,
            Key={"pk": {"S": key}},
            UpdateExpression="SET #s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": status}},
        )

    def map(self, **settings: Any) -> str:
        return str(
            self.lam.create_event_source_mapping(
                FunctionName=self.function, EventSourceArn=self.stream_arn, StartingPosition="TRIM_HORIZON",
                **settings,
            )["UUID"]
        )  # fmt: skip

    def collect(self, seconds: float) -> list[dict[str, Any]]:
        """Every batch the function reported within `seconds` (and before), oldest first."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for message in self.sqs.receive_message(
                QueueUrl=self.probe_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", []):
                self.batches.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.probe_url, ReceiptHandle=message["ReceiptHandle"])
        return self.batches

    def delivered(self, key: str) -> int:
        return sum(batch["keys"].count(key) for batch in self.batches)


@pytest.fixture
def probe(
    local_engine: LocalEngine, make_function: Callable[..., str], name: Callable[[str], str]
) -> StreamProbe:
    return StreamProbe(local_engine, make_function, name)


def test_the_outcome_filter_passes_only_inflight_to_succeeded_or_failed(
    probe: StreamProbe, wait: Any
) -> None:
    probe.map(BatchSize=100, FilterCriteria={"Filters": [{"Pattern": json.dumps(OUTCOME_FILTER_PATTERN)}]})
    probe.put("k-ok", "INFLIGHT")  # INSERT: no old image
    probe.set_status("k-ok", "INFLIGHT")  # an annotation: INFLIGHT -> INFLIGHT
    probe.set_status("k-ok", "SUCCEEDED")  # an outcome
    probe.set_status("k-ok", "QUARANTINED")  # a redrive mark on a settled key
    probe.put("k-bad", "INFLIGHT")
    probe.set_status("k-bad", "FAILED")  # an outcome
    probe.dynamodb.delete_item(TableName=probe.table, Key={"pk": {"S": "k-bad"}})  # an expiry

    wait(
        lambda: len([s for b in probe.collect(1) for s in b["statuses"]]) >= 2,
        timeout=30,
        what="two outcomes",
    )
    probe.collect(3)  # anything the filter should have dropped would show up by now

    delivered = [
        (key, status) for b in probe.batches for key, status in zip(b["keys"], b["statuses"], strict=True)
    ]
    assert sorted(delivered) == [("k-bad", "FAILED"), ("k-ok", "SUCCEEDED")]


def test_a_failed_invocation_is_retried_whole_without_bisection_or_a_retry_limit_then_given_up_by_age(
    probe: StreamProbe, name: Callable[[str], str], local_engine: LocalEngine
) -> None:
    """AWS: bisects the failing batch (BisectBatchOnFunctionError), stops after MaximumRetryAttempts
    and then sends the DDBStreamBatchInfo record to the on-failure destination.
    The engine: retries the same whole batch about once a second, ignores the bisection and the
    retry limit, and gives the batch up only by MaximumRecordAgeInSeconds (condition
    MaxRecordAgeExceeded), sending the same record shape. Locally, then, a failed relay invocation
    is retried until it succeeds (for up to the mapping's record age): no event is given up early."""
    destination_url = probe.sqs.create_queue(QueueName=name("on-failure"))["QueueUrl"]
    destination_arn = probe.sqs.get_queue_attributes(QueueUrl=destination_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    for n, behaviour in enumerate(["ok", "ok", "raise", "ok"]):
        probe.put(f"k-{n}", "INFLIGHT", behaviour)
    created = time.monotonic()
    probe.map(
        BatchSize=10,
        BisectBatchOnFunctionError=True,
        MaximumRetryAttempts=1,
        MaximumRecordAgeInSeconds=60,
        DestinationConfig={"OnFailure": {"Destination": destination_arn}},
    )

    # AWS would stop after 1 + 1 retry (and split the batch first): a third whole attempt proves
    # both ignored. About one attempt a second; waited for up to 30 s on a loaded machine.
    deadline = time.monotonic() + 30
    while len(probe.collect(1)) < 3 and time.monotonic() < deadline:
        pass
    batches = probe.batches
    assert len(batches) >= 3
    assert {tuple(batch["keys"]) for batch in batches} == {("k-0", "k-1", "k-2", "k-3")}  # never split
    assert probe.sqs.receive_message(QueueUrl=destination_url, WaitTimeSeconds=0).get("Messages") is None

    records: list[dict[str, Any]] = []
    while not records and time.monotonic() - created < 120:
        records = probe.sqs.receive_message(QueueUrl=destination_url, WaitTimeSeconds=5).get("Messages", [])
    assert records, "no on-failure record within 120 s"
    given_up = json.loads(records[0]["Body"])
    assert given_up["requestContext"]["condition"] == "MaxRecordAgeExceeded"
    info = given_up["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"]) == (
        batches[0]["sequenceNumbers"][0],
        batches[0]["sequenceNumbers"][-1],
    )
    assert (info["batchSize"], info["streamArn"]) == (4, probe.stream_arn)
    # The shard the record names is the stream's, so the relay can read the batch again from it.
    streams = local_engine.client("dynamodbstreams")
    shards = streams.describe_stream(StreamArn=probe.stream_arn)["StreamDescription"]["Shards"]
    assert info["shardId"] in {shard["ShardId"] for shard in shards}

    # The mapping moved on past the batch it gave up.
    probe.put("k-after", "INFLIGHT")
    deadline = time.monotonic() + 30
    while not probe.delivered("k-after") and time.monotonic() < deadline:
        probe.collect(1)
    assert probe.delivered("k-after") == 1


def test_a_partial_batch_response_is_not_retried_by_the_engine(probe: StreamProbe, wait: Any) -> None:
    """AWS: checkpoints at the reported sequence number and delivers that record (and the ones
    after it) again. The engine: ignores the response and moves past the whole batch. The relay
    answers refused events this way on AWS; locally EventBridge refuses no entry of a healthy bus,
    and a relay that fails outright raises (retried whole, previous test)."""
    for n, behaviour in enumerate(["ok", "partial", "ok"]):
        probe.put(f"k-{n}", "INFLIGHT", behaviour)
    probe.map(BatchSize=10, FunctionResponseTypes=["ReportBatchItemFailures"])

    wait(lambda: probe.collect(1), timeout=30, what="the first batch")
    probe.collect(5)

    assert probe.delivered("k-1") == 1  # AWS: delivered again, from its sequence number on
    assert probe.delivered("k-2") == 1


def test_the_batching_window_is_not_waited_for(probe: StreamProbe, wait: Any) -> None:
    """AWS: gathers records for up to MaximumBatchingWindowInSeconds (or until the batch is full)
    before invoking. The engine: invokes as soon as a record is there, so a lone record waits for
    no window and the relay's batches are smaller than on AWS (more PutEvents calls per event)."""
    probe.map(BatchSize=100, MaximumBatchingWindowInSeconds=10)
    time.sleep(1)
    written = time.monotonic()
    probe.put("k-alone", "INFLIGHT")

    wait(lambda: probe.collect(0.5) and probe.delivered("k-alone"), timeout=30, what="the lone record")

    assert time.monotonic() - written < 8  # AWS: ~10 s (the window), the batch being far from full


STREAM_READER_SOURCE = """
import os, boto3
from botocore.exceptions import ClientError

def lambda_handler(event, context):
    try:
        boto3.client("dynamodbstreams").describe_stream(StreamArn=os.environ["STREAM"])
    except ClientError as error:
        return error.response["Error"]["Code"]
    return "allowed"
"""


def test_stream_reads_are_authorized_against_resource_star_not_the_stream(
    probe: StreamProbe, make_function: Callable[..., str]
) -> None:
    """AWS authorizes dynamodb:DescribeStream / GetShardIterator / GetRecords on the stream's ARN
    (Amazon DynamoDB Developer Guide, "IAM policy to allow an AWS Lambda function to access DynamoDB
    stream records"), which is how the stage grants them (tests/infra/app/components/test_relay.py).
    The engine evaluates these calls against no resource, so only a grant on "*" passes: a relay
    replaying a batch under its own role is denied locally (tests/local/stage/test_relay.py adds the
    grant the engine needs, on top of the stage's)."""

    def reader(resource: str) -> str:
        return make_function(
            STREAM_READER_SOURCE,
            environment={"STREAM": probe.stream_arn},
            policy={
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "dynamodb:DescribeStream", "Resource": resource}],
            },
        )

    def answer(function: str) -> str:
        return str(json.loads(probe.lam.invoke(FunctionName=function, Payload=b"{}")["Payload"].read()))

    assert answer(reader(probe.stream_arn)) == "AccessDeniedException"  # AWS: "allowed"
    assert answer(reader("*")) == "allowed"
