"""Events from committed state, end to end on the local cloud (issue 11, item 6): the worker killed
mid-batch and the relay failing leave no stranded event; a batch handed back to the relay is
published again under the same event ids, by the deployed relay under its own role (IAM enforced).

The engine retries a failed relay invocation's batch whole (tests/local/engine/
test_dynamodb_streams.py), which is what the kill and failure cases here rely on; the per-crash-
point proof, with AWS's partial batch response and checkpoints, is tests/unit/functions/
test_crash_points.py.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from functions.common.failure_mode import encode_failure_mode
from functions.common.names import (
    FAILURE_MODE_PARAMETER,
    STATE_TABLE_PARTITION_KEY,
    DetailType,
    ErrorType,
    FailureMode,
    Output,
    RecordStatus,
)
from stage_client.send import send_payloads
from stage_client.target import Target
from stage_client.verify import fetch_statuses
from tests.local.stage.audit_events import KeyEvents, read_events, wait_for_events

ENGINE_STREAM_GRANT = "test-engine-stream-reads-on-star"


def set_mode(target: Target, mode: FailureMode, ttl_seconds: int | None = None) -> None:
    value = encode_failure_mode(
        mode, set_by="tests/local/stage/test_relay", now=time.time(), ttl_seconds=ttl_seconds
    )
    target.client("ssm").put_parameter(
        Name=FAILURE_MODE_PARAMETER, Value=value, Type="String", Overwrite=True
    )
    time.sleep(2)  # the functions cache the mode for failureModeCacheSeconds (1 s locally)


def orders(prefix: str, n: int) -> list[dict[str, Any]]:
    run = uuid.uuid4().hex[:8]
    return [{"orderId": f"{prefix}-{run}-{i}", "amount": i + 1} for i in range(n)]


def statuses(target: Target, keys: list[str]) -> dict[str, str]:
    return {key: str(record.get("status")) for key, record in fetch_statuses(target, keys).items()}


def assert_one_event_each(events: KeyEvents, keys: list[str]) -> None:
    for key in keys:
        ids = events.event_ids(key, DetailType.SUCCESS)
        assert len(ids) == 1, f"{key}: {len(ids)} distinct success event ids"


@pytest.fixture
def relay_role(local_target: Target) -> Iterator[tuple[Any, str]]:
    lam, iam = local_target.client("lambda"), local_target.client("iam")
    role_arn = lam.get_function(FunctionName=local_target.output(Output.RELAY_FUNCTION_NAME))[
        "Configuration"
    ]["Role"]
    role = role_arn.rsplit("/", 1)[1]
    yield iam, role
    for policy in ("test-deny-put-events", ENGINE_STREAM_GRANT):
        with contextlib.suppress(iam.exceptions.NoSuchEntityException):
            iam.delete_role_policy(RoleName=role, PolicyName=policy)


def test_the_relay_failing_delays_events_and_loses_none(
    local_target: Target, relay_role: tuple[Any, str], wait: Any
):
    """EventBridge unreachable for the relay (its PutEvents denied): the records settle, the relay's
    invocations fail and its batch is retried; once allowed again every key has its event."""
    iam, role = relay_role
    iam.put_role_policy(
        RoleName=role,
        PolicyName="test-deny-put-events",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Deny", "Action": "events:PutEvents", "Resource": "*"}],
            }
        ),
    )
    keys = [sent.idempotency_key for sent in send_payloads(local_target, orders("relay-denied", 6))]
    wait(
        lambda: set(statuses(local_target, keys).values()) == {RecordStatus.SUCCEEDED.value},
        timeout=60,
        what="every record SUCCEEDED",
    )
    held = read_events(local_target, keys, KeyEvents(), seconds=4)
    assert not held.deliveries  # committed, but the relay cannot publish yet

    iam.delete_role_policy(RoleName=role, PolicyName="test-deny-put-events")

    events = wait_for_events(local_target, keys, DetailType.SUCCESS, timeout=60)
    assert_one_event_each(events, keys)


def test_a_worker_killed_mid_batch_leaves_no_stranded_event(local_target: Target, wait: Any) -> None:
    """slow_downstream: the runtime kills the worker during a record (its lease and errorType
    DownstreamTimeoutError recorded, no outcome); with the mode off, the returned messages settle
    and every key gets one success event."""
    set_mode(local_target, FailureMode.SLOW_DOWNSTREAM, ttl_seconds=120)
    try:
        keys = [sent.idempotency_key for sent in send_payloads(local_target, orders("worker-killed", 3))]

        def killed() -> bool:
            # Any of the three: a standard queue keeps no order, so the record the worker was in
            # when it was killed need not be the first one sent.
            table = local_target.client("dynamodb")
            for key in keys:
                item = table.get_item(
                    TableName=local_target.output(Output.TABLE_NAME),
                    Key={STATE_TABLE_PARTITION_KEY: {"S": key}},
                    ConsistentRead=True,
                ).get("Item")
                if item and item.get("errorType", {}).get("S") == ErrorType.TIMEOUT.value:
                    return True
            return False

        wait(killed, timeout=60, what="a worker invocation killed during a record")
    finally:
        set_mode(local_target, FailureMode.NONE)

    events = wait_for_events(local_target, keys, DetailType.SUCCESS, timeout=120)
    assert set(statuses(local_target, keys).values()) == {RecordStatus.SUCCEEDED.value}
    assert_one_event_each(events, keys)
    for key in keys:
        assert not events.event_ids(key, DetailType.FAILURE)  # a kill is no outcome: nothing to announce


def test_a_handed_back_batch_is_published_again_under_the_same_event_ids(
    local_target: Target, relay_role: tuple[Any, str]
) -> None:
    keys = [sent.idempotency_key for sent in send_payloads(local_target, orders("relay-replay", 3))]
    first = wait_for_events(local_target, keys, DetailType.SUCCESS, timeout=60)
    assert_one_event_each(first, keys)

    # The on-failure record the mapping would have sent, for the stream records of these keys.
    table = local_target.client("dynamodb").describe_table(TableName=local_target.output(Output.TABLE_NAME))
    stream_arn = table["Table"]["LatestStreamArn"]
    streams = local_target.client("dynamodbstreams")
    [shard] = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(
        StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records: list[dict[str, Any]] = []
    while iterator:
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        if not page["Records"]:
            break
        records.extend(page["Records"])
        iterator = page.get("NextShardIterator")
    ours = [i for i, r in enumerate(records) if r["dynamodb"]["Keys"][STATE_TABLE_PARTITION_KEY]["S"] in keys]
    batch = records[ours[0] : ours[-1] + 1]
    failure_record = {
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 11},
        "DDBStreamBatchInfo": {
            "shardId": shard["ShardId"],
            "startSequenceNumber": batch[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
            "batchSize": len(batch),
            "streamArn": stream_arn,
        },
    }

    # The stage grants the stream reads on the stream's ARN, as AWS authorizes them; the engine
    # authorizes them against no resource (tests/local/engine/test_dynamodb_streams.py), so the
    # relay's role gets the same actions on "*" for this replay, and loses them after.
    iam, role = relay_role
    iam.put_role_policy(
        RoleName=role,
        PolicyName=ENGINE_STREAM_GRANT,
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": [
                            "dynamodb:DescribeStream",
                            "dynamodb:GetShardIterator",
                            "dynamodb:GetRecords",
                        ],
                        "Resource": "*",
                    }
                ],
            }
        ),
    )
    response = local_target.client("lambda").invoke(
        FunctionName=local_target.output(Output.RELAY_FUNCTION_NAME), Payload=json.dumps(failure_record)
    )
    answer = json.loads(response["Payload"].read())

    assert "FunctionError" not in response, answer
    assert answer["records"] == len(batch)
    assert answer["outcomes"] >= len(keys)
    again = wait_for_events(local_target, keys, DetailType.SUCCESS, timeout=60)
    for key in keys:
        assert again.event_ids(key, DetailType.SUCCESS) == first.event_ids(key, DetailType.SUCCESS)
