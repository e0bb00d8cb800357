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
- MaximumBatchingWindowInSeconds: records gathered up to the window, or until BatchSize records
  are read, before an invocation ("Lambda parameters for Amazon DynamoDB event source mappings";
  "Using AWS Lambda with Amazon DynamoDB", polling and batching streams), with one batch of a shard
  processed at a time (ParallelizationFactor 1) and the next read only once it succeeded. The engine
  does neither; the lab's engine patch stream_batching does both, and invokes stream batches off the
  engine's poll thread so that SQS mappings keep their pace meanwhile.

Where the engine differs, the test says so and asserts what the engine does, so an engine upgrade
that closes the gap fails the test by name (and the lab's notes must change with it). The local
tier relies only on the behaviours the engine shares with AWS: filtering, and retrying a failed
invocation's batch whole, and the batching window (with the lab's patch).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from functions.relay.outcomes import OUTCOME_FILTER_PATTERN
from tests.local.conftest import LocalEngine

# Reports every batch it gets to a probe queue, then does what the records ask: a record whose new
# image has `behaviour` "raise" fails the invocation, "partial" is reported as a batch item failure.
# "slow" sleeps SLOW_SECONDS after reporting; "flaky" fails the first invocation that carries it
# (a marker file in the engine machine's temporary folder remembers it), then passes.
SLOW_SECONDS = 3
PROBE_SOURCE = f"""
import json, os, time, boto3

def lambda_handler(event, context):
    invoked_at = time.time()
    records = event["Records"]
    keys = [r["dynamodb"]["Keys"]["pk"]["S"] for r in records]
    behaviours = [r["dynamodb"].get("NewImage", {{}}).get("behaviour", {{}}).get("S") for r in records]
    boto3.client("sqs").send_message(
        QueueUrl=os.environ["PROBE"],
        MessageBody=json.dumps({{
            "keys": keys,
            "sequenceNumbers": [r["dynamodb"]["SequenceNumber"] for r in records],
            "statuses": [r["dynamodb"].get("NewImage", {{}}).get("status", {{}}).get("S") for r in records],
            "invokedAt": invoked_at,
        }}),
    )
    if "slow" in behaviours:
        time.sleep({SLOW_SECONDS})
    if "raise" in behaviours:
        raise RuntimeError("poison record in the batch")
    if "flaky" in behaviours and not os.path.exists(os.environ["FLAKY_MARKER"]):
        open(os.environ["FLAKY_MARKER"], "w").close()
        raise RuntimeError("flaky record, first attempt")
    return {{"batchItemFailures": [
        {{"itemIdentifier": r["dynamodb"]["SequenceNumber"]}}
        for r, behaviour in zip(records, behaviours) if behaviour == "partial"
    ]}}
"""


# An SQS-mapped function that reports each message body with the time it handled it.
SQS_REPORTER_SOURCE = """
import json, os, time, boto3

def lambda_handler(event, context):
    for record in event["Records"]:
        boto3.client("sqs").send_message(
            QueueUrl=os.environ["REPORT"], MessageBody=json.dumps({"body": record["body"], "at": time.time()})
        )
    return {"batchItemFailures": []}
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
        self.flaky_marker = Path(tempfile.gettempdir()) / name("flaky-marker")
        self.probe_url = self.sqs.create_queue(QueueName=probe_name)["QueueUrl"]
        probe_arn = self.sqs.get_queue_attributes(QueueUrl=self.probe_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.function = make_function(
            PROBE_SOURCE,
            environment={
                "PROBE": self.probe_url,
                "FLAKY_MARKER": str(self.flaky_marker),
            },
            policy={
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": probe_arn}],
            },
        )
        self.batches: list[dict[str, Any]] = []
        # The engine's at-least-once mode may deliver a probe message twice: each invocation once.
        self._seen_messages: set[str] = set()

    def put(self, key: str, status: str, behaviour: str = "ok") -> None:
        self.dynamodb.put_item(
            TableName=self.table,
            Item={"pk": {"S": key}, "status": {"S": status}, "behaviour": {"S": behaviour}},
        )

    def put_many(self, keys: list[str], status: str) -> None:
        """One stream record per key, in this order, in as few calls as BatchWriteItem allows."""
        for start in range(0, len(keys), 25):
            self.dynamodb.batch_write_item(
                RequestItems={
                    self.table: [
                        {"PutRequest": {"Item": {"pk": {"S": key}, "status": {"S": status}}}}
                        for key in keys[start : start + 25]
                    ]
                }
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
                if message["MessageId"] not in self._seen_messages:
                    self._seen_messages.add(message["MessageId"])
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


def in_stream_order(batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The batches by their first record's sequence number (the probe queue keeps no order)."""
    return sorted(batches, key=lambda batch: int(batch["sequenceNumbers"][0]))


def test_records_written_within_the_window_arrive_in_one_batch(probe: StreamProbe) -> None:
    """AWS: Lambda gathers records until the batch is full or MaximumBatchingWindowInSeconds has
    passed. 30 records written within the 2-second window of a mapping with BatchSize 100 make one
    invocation (without the lab's stream_batching patch the engine invokes for the first record
    alone, then for whatever came meanwhile: several batches)."""
    probe.map(BatchSize=100, MaximumBatchingWindowInSeconds=2)
    time.sleep(1)
    keys = [f"k-{n:02}" for n in range(30)]
    started = time.monotonic()
    probe.put_many(keys, "INFLIGHT")
    assert time.monotonic() - started < 1.5, "the writes took most of the window: the test proves nothing"

    probe.collect(5)

    assert [batch["keys"] for batch in probe.batches] == [keys]


def test_a_lone_record_waits_for_the_window_and_no_longer(probe: StreamProbe, wait: Any) -> None:
    """AWS: a batch far from full is sent when the window expires. The lone record reaches the
    function no sooner than the window after its write, and not much later: the engine's poll loop,
    which otherwise sleeps up to a second after a pass that sent nothing, is woken when the window
    closes."""
    window = 2
    probe.map(BatchSize=100, MaximumBatchingWindowInSeconds=window)
    # A first record makes the function warm, so that its start-up is not what the test measures.
    probe.put("k-warm-up", "INFLIGHT")
    wait(lambda: probe.collect(0.5) and probe.delivered("k-warm-up"), timeout=30, what="the warm-up record")
    written = time.time()
    probe.put("k-alone", "INFLIGHT")

    wait(lambda: probe.collect(0.5) and probe.delivered("k-alone"), timeout=30, what="the lone record")

    (batch,) = [batch for batch in probe.batches if batch["keys"] == ["k-alone"]]
    assert window <= batch["invokedAt"] - written <= window + 1.5


def test_a_slow_stream_function_does_not_hold_up_an_sqs_mapping(
    probe: StreamProbe, make_function: Callable[..., str], name: Callable[[str], str], wait: Any
) -> None:
    """AWS: each event source mapping is polled by its own pollers; a stream batch that takes
    seconds delays only the batches of its own shard. The engine runs every mapping from one poll
    thread: the lab's stream_batching patch invokes stream batches off it, as ministack already does
    for SQS batches. Messages sent to an SQS-mapped function while the stream function sleeps are
    processed before it returns (without the patch: only after)."""
    sqs = probe.sqs
    report_url = sqs.create_queue(QueueName=name("sqs-report"))["QueueUrl"]
    report_arn = sqs.get_queue_attributes(QueueUrl=report_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    work_url = sqs.create_queue(QueueName=name("sqs-work"))["QueueUrl"]
    work_arn = sqs.get_queue_attributes(QueueUrl=work_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    reporter = make_function(
        SQS_REPORTER_SOURCE,
        environment={"REPORT": report_url},
        policy={
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": report_arn}],
        },
    )
    probe.lam.create_event_source_mapping(FunctionName=reporter, EventSourceArn=work_arn, BatchSize=10)
    reported: dict[str, float] = {}

    def collect_reports() -> dict[str, float]:
        for message in sqs.receive_message(
            QueueUrl=report_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", []):
            body = json.loads(message["Body"])
            reported.setdefault(body["body"], body["at"])
            sqs.delete_message(QueueUrl=report_url, ReceiptHandle=message["ReceiptHandle"])
        return reported

    # A warm SQS function first, so that its start-up is not what the test measures.
    sqs.send_message(QueueUrl=work_url, MessageBody="warm-up")
    wait(lambda: "warm-up" in collect_reports(), timeout=30, what="the warm-up message")

    probe.map(BatchSize=10)
    probe.put("k-slow", "INFLIGHT", "slow")
    wait(lambda: probe.collect(0.5) and probe.delivered("k-slow"), timeout=30, what="the slow stream batch")
    slow_returns_at = probe.batches[0]["invokedAt"] + SLOW_SECONDS
    # One batch, so that the warm function handles it (a second concurrent one would start cold).
    sqs.send_message_batch(
        QueueUrl=work_url, Entries=[{"Id": str(n), "MessageBody": f"m-{n}"} for n in range(3)]
    )

    wait(lambda: {"m-0", "m-1", "m-2"} <= collect_reports().keys(), timeout=30, what="the SQS messages")

    assert max(reported[f"m-{n}"] for n in range(3)) < slow_returns_at


def test_batches_keep_the_stream_order_and_lose_or_repeat_no_record(probe: StreamProbe, wait: Any) -> None:
    """AWS: the batches of a shard are processed one at a time, in order (ParallelizationFactor 1),
    each at most BatchSize records. 35 records in batches of 10 arrive in their write order, each
    once."""
    keys = [f"k-{n:02}" for n in range(35)]
    probe.map(BatchSize=10, MaximumBatchingWindowInSeconds=1)
    for key in keys:
        probe.put(key, "INFLIGHT")

    wait(
        lambda: probe.collect(0.5) and all(probe.delivered(key) for key in keys),
        timeout=60,
        what="35 records",
    )
    probe.collect(2)  # a record delivered twice would show up by now

    batches = in_stream_order(probe.batches)
    assert [key for batch in batches for key in batch["keys"]] == keys
    assert len(batches) >= 4
    assert all(len(batch["keys"]) <= 10 for batch in batches)
    sequence = [int(number) for batch in batches for number in batch["sequenceNumbers"]]
    assert sequence == sorted(sequence)
    # One batch in flight at a time: each batch was invoked after the one before it (the probe
    # reports before returning, so this orders the invocations' starts).
    starts = [batch["invokedAt"] for batch in batches]
    assert starts == sorted(starts)


def test_a_failed_batch_is_retried_from_the_same_position(probe: StreamProbe, wait: Any) -> None:
    """AWS: a function error leaves the shard's checkpoint where it was, and Lambda retries the batch
    ("Error handling" of "Using AWS Lambda with Amazon DynamoDB"). With the batch run off the poll
    thread the position still moves only when the invocation succeeds: the failed batch comes back
    whole, and after its success the mapping goes on with the next record, once."""
    for n, behaviour in enumerate(["ok", "flaky", "ok"]):
        probe.put(f"k-{n}", "INFLIGHT", behaviour)
    try:
        probe.map(BatchSize=10, MaximumBatchingWindowInSeconds=1)
        wait(lambda: len(probe.collect(0.5)) >= 2, timeout=30, what="the failed batch and its retry")
        probe.put("k-after", "INFLIGHT")
        wait(lambda: probe.collect(0.5) and probe.delivered("k-after"), timeout=30, what="the next record")
        probe.collect(2)
    finally:
        probe.flaky_marker.unlink(missing_ok=True)

    batches = in_stream_order(probe.batches)
    assert [batch["keys"] for batch in batches] == [["k-0", "k-1", "k-2"], ["k-0", "k-1", "k-2"], ["k-after"]]
    assert batches[0]["sequenceNumbers"] == batches[1]["sequenceNumbers"]


def test_each_stream_batch_records_the_iterator_age_of_its_last_record(
    probe: StreamProbe, local_engine: LocalEngine, wait: Any
) -> None:
    """AWS: a function mapped to a stream publishes AWS/Lambda IteratorAge (dimension FunctionName),
    the age of the batch's last record when the mapping sent it, in milliseconds (AWS Lambda
    Developer Guide, "Types of metrics for Lambda functions"): the relay-iterator-age alarm reads it.
    The engine records none; lab/localcloud/engine_main.py adds it at the invocation dispatcher, so
    that alarm is evaluated locally too. Records written 3 s before the mapping exists are at least
    3 s old when it reads them from the trim horizon."""
    probe.put("k-early", "INFLIGHT")
    time.sleep(3)
    probe.map(BatchSize=10)
    wait(lambda: probe.collect(0.5) and probe.delivered("k-early"), timeout=30, what="the batch")
    cloudwatch = local_engine.client("cloudwatch")

    def ages() -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        return list(
            cloudwatch.get_metric_statistics(
                Namespace="AWS/Lambda", MetricName="IteratorAge",
                Dimensions=[{"Name": "FunctionName", "Value": probe.function}],
                StartTime=now - timedelta(minutes=5), EndTime=now + timedelta(minutes=1),
                Period=60, Statistics=["Maximum", "SampleCount"], Unit="Milliseconds",
            )["Datapoints"]
        )  # fmt: skip

    points = wait(ages, timeout=10, what="an IteratorAge data point")
    assert sum(point["SampleCount"] for point in points) >= 1
    assert 3_000 <= max(point["Maximum"] for point in points) < 60_000


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
