"""End to end on the deployed IngestionLocal stage: the API, the worker, the DLQ, its alarm and the
redrive, with the real functions running under their execution roles."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
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
    is_operator_path,
)
from stage_client.api import signed
from stage_client.target import Target
from tests.local.stage.audit_events import wait_for_events


def call(
    target: Target, method: str, path: str, body: Any = None, raw: bytes | None = None
) -> tuple[int, Any]:
    """One raw API call; the operator routes (/redrive/*) signed with SigV4 as the caller, as on AWS."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    url = f"{target.api_url}{path}"
    headers = {"content-type": "application/json"}
    headers = (
        signed(target, method, url, data, headers)
        if is_operator_path(path)
        else {**headers, **target.api_headers()}
    )
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def state_item(target: Target, key: str) -> dict[str, Any] | None:
    item = target.client("dynamodb").get_item(
        TableName=target.output(Output.TABLE_NAME),
        Key={STATE_TABLE_PARTITION_KEY: {"S": key}},
        ConsistentRead=True,
    )
    return item.get("Item")


def status_of(target: Target, key: str) -> str | None:
    item = state_item(target, key)
    return item["status"]["S"] if item else None


def queue_depth(target: Target, output: Output) -> int:
    attributes = target.client("sqs").get_queue_attributes(
        QueueUrl=target.output(output),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def alarm_state(target: Target, slug: str) -> str:
    name = f"{target.output(Output.QUEUE_NAME).removesuffix('-events')}-{slug}"
    return str(
        target.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"]
    )


@pytest.fixture
def poison_mode(local_target: Target) -> Iterator[None]:
    ssm = local_target.client("ssm")
    value = encode_failure_mode(
        FailureMode.POISON_PAYLOAD, set_by="tests/local", now=time.time(), ttl_seconds=240
    )
    ssm.put_parameter(Name=FAILURE_MODE_PARAMETER, Value=value, Type="String", Overwrite=True)
    # A worker that just ran (the test before) holds the old mode for failureModeCacheSeconds
    # (1 s locally): an event posted at once would be processed without the poison.
    time.sleep(2)
    try:
        yield
    finally:
        none = encode_failure_mode(FailureMode.NONE, set_by="tests/local", now=time.time(), ttl_seconds=None)
        ssm.put_parameter(Name=FAILURE_MODE_PARAMETER, Value=none, Type="String", Overwrite=True)


def test_deployed_functions_carry_their_code(local_target):
    lam = local_target.client("lambda")
    for output in (Output.INGEST_FUNCTION_NAME, Output.WORKER_FUNCTION_NAME, Output.REDRIVE_FUNCTION_NAME):
        assert lam.get_function(FunctionName=local_target.output(output))["Configuration"]["CodeSize"] > 0


def test_outputs_file_points_every_client_at_the_lab(local_target):
    assert local_target.api_url.startswith(f"{local_target.endpoint_url}/_aws/execute-api/")
    assert local_target.endpoint_url.startswith("http://127.0.0.1:")
    assert local_target.output(Output.QUEUE_URL).endswith(f"/{local_target.output(Output.QUEUE_NAME)}")


def test_posted_event_is_recorded_succeeded(local_target, wait):
    status, body = call(
        local_target, "POST", "/events", {"orderId": f"e2e-{uuid.uuid4().hex}", "amount": 42.5}
    )

    assert status == 202
    key = body["idempotencyKey"]
    wait(
        lambda: status_of(local_target, key) == RecordStatus.SUCCEEDED.value,
        timeout=30,
        what=f"{key} SUCCEEDED",
    )


def test_bad_input_is_rejected_with_4xx_and_never_queued(local_target):
    key = f"e2e-bad-{uuid.uuid4().hex}"

    missing_amount = call(local_target, "POST", "/events", {"orderId": "1", "idempotencyKey": key})
    malformed = call(local_target, "POST", "/events", raw=b'{"orderId": "1", "orderId": "2", "amount": 1}')
    not_json = call(local_target, "POST", "/events", raw=b"not json")
    # The local API hands the function a lossy decode of these bytes (U+FFFD for 0xFF).
    not_utf8 = call(
        local_target, "POST", "/events", raw=f'{{"orderId":"{key}","amount":1,"x":"'.encode() + b'\xff"}'
    )
    sqs_unsafe = call(
        local_target, "POST", "/events", {"orderId": "1", "amount": 1, "idempotencyKey": key, "x": "\uffff"}
    )

    assert (not_utf8[0], not_utf8[1]["error"]) == (400, "invalid_utf8")
    assert (sqs_unsafe[0], sqs_unsafe[1]["error"], sqs_unsafe[1]["field"]) == (
        422,
        "unsupported_character",
        "$.x",
    )
    for status, body in (missing_amount, malformed, not_json, not_utf8, sqs_unsafe):
        assert 400 <= status < 500, body
        assert "idempotencyKey" not in (body or {})
    # Had ingest queued it, the worker would have recorded the client key (FAILED: schema).
    time.sleep(3)
    assert state_item(local_target, key) is None


def test_a_key_reused_with_another_payload_is_a_visible_conflict_and_the_first_record_stays(
    local_target, wait
):
    key = f"e2e-reused-{uuid.uuid4().hex[:12]}"
    first = {"orderId": key, "amount": 10, "idempotencyKey": key}
    status, _ = call(local_target, "POST", "/events", first)
    assert status == 202

    # SUCCEEDED, and its success event published by the relay: nothing changes the record later.
    success = wait_for_events(local_target, [key], DetailType.SUCCESS, timeout=60)
    assert len(success.event_ids(key, DetailType.SUCCESS)) == 1
    recorded = state_item(local_target, key)
    assert recorded is not None
    assert recorded["status"]["S"] == RecordStatus.SUCCEEDED.value

    # The ingest reads the key's record: another payload is refused at once.
    status, body = call(local_target, "POST", "/events", {**first, "amount": 99})
    assert (status, body["error"]) == (409, "idempotency_conflict"), body

    # Two requests at once can both pass that read: the worker is the guarantee. Such a message,
    # put on the queue as the ingest would have, is parked in the DLQ, the first record untouched.
    sqs = local_target.client("sqs")
    conflicting = json.dumps({**first, "amount": 99}, separators=(",", ":"), sort_keys=True)
    sent = sqs.send_message(
        QueueUrl=local_target.output(Output.QUEUE_URL),
        MessageBody=conflicting,
        MessageAttributes={"idempotencyKey": {"DataType": "String", "StringValue": key}},
    )

    def parked() -> dict[str, Any] | None:
        for message in sqs.receive_message(
            QueueUrl=local_target.output(Output.DLQ_URL),
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            VisibilityTimeout=5,
        ).get("Messages", []):
            if message["Body"] == conflicting:
                return message
        return None

    message = wait(parked, timeout=60, what="the conflicting message in the DLQ")
    assert message["MessageAttributes"]["errorType"]["StringValue"] == ErrorType.IDEMPOTENCY_CONFLICT.value
    assert state_item(local_target, key) == recorded
    sqs.delete_message(QueueUrl=local_target.output(Output.DLQ_URL), ReceiptHandle=message["ReceiptHandle"])
    # Announced: a failure event naming the parked message, and the conflicts alarm (its metric
    # counted by the worker's EMF line, evaluated by the local alarm agent).
    failure = wait_for_events(local_target, [key], DetailType.FAILURE, timeout=60)
    [detail] = failure.details(key, DetailType.FAILURE)
    # messageId: the conflicting message as it came off the main queue (the DLQ holds a copy).
    assert (detail["errorType"], detail["messageId"]) == (
        ErrorType.IDEMPOTENCY_CONFLICT.value,
        sent["MessageId"],
    )
    wait(
        lambda: alarm_state(local_target, "idempotency-conflicts") == "ALARM",
        timeout=60,
        what="the idempotency-conflicts alarm",
    )
    assert state_item(local_target, key) == recorded


@pytest.mark.usefixtures("poison_mode")
def test_poison_message_reaches_dlq_alarms_and_redrive_moves_it_back(local_target, wait):
    dlq_before = queue_depth(local_target, Output.DLQ_URL)
    status, body = call(
        local_target, "POST", "/events", {"orderId": f"poison-{uuid.uuid4().hex}", "amount": 1}
    )
    assert status == 202
    key = body["idempotencyKey"]

    # maxReceiveCount failed receives (visibility timeout apart), then the DLQ and its alarm.
    wait(
        lambda: queue_depth(local_target, Output.DLQ_URL) > dlq_before,
        timeout=120,
        what="the DLQ to receive it",
    )
    assert status_of(local_target, key) == RecordStatus.FAILED.value
    wait(lambda: alarm_state(local_target, "dlq-depth") == "ALARM", timeout=45, what="the DLQ depth alarm")

    ssm = local_target.client("ssm")
    none = encode_failure_mode(FailureMode.NONE, set_by="tests/local", now=time.time(), ttl_seconds=None)
    ssm.put_parameter(Name=FAILURE_MODE_PARAMETER, Value=none, Type="String", Overwrite=True)
    time.sleep(2)  # the worker caches the mode for failureModeCacheSeconds (1 s locally)
    status, job = call(local_target, "POST", "/redrive/start", {"maxMessages": 100})
    assert status == 202, job

    def finished() -> dict[str, Any] | None:
        _, current = call(local_target, "GET", f"/redrive/status?jobId={job['jobId']}")
        return current if current.get("status") in ("SUCCEEDED", "FAILED", "CANCELLED") else None

    final = wait(finished, timeout=60, what="the redrive job to finish")
    assert final["status"] == "SUCCEEDED", final
    wait(
        lambda: status_of(local_target, key) == RecordStatus.SUCCEEDED.value,
        timeout=60,
        what="the redriven event",
    )
    wait(lambda: dlq_drained(local_target), timeout=150, interval=2, what="the DLQ to drain")
    wait(lambda: alarm_state(local_target, "dlq-depth") == "OK", timeout=45, what="the DLQ alarm back to OK")


def dlq_drained(target: Target) -> bool:
    """Nothing in the DLQ, visible or in flight. A copy the redrive's delete missed (at-least-once
    delivery: SQS developer guide, "At-least-once delivery") comes back once its receive's
    visibility timeout ends: it is redriven as well, and the worker finds its key done."""
    attributes = target.client("sqs").get_queue_attributes(
        QueueUrl=target.output(Output.DLQ_URL),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    visible = int(attributes["ApproximateNumberOfMessages"])
    hidden = int(attributes["ApproximateNumberOfMessagesNotVisible"])
    if visible and not hidden:
        status, job = call(target, "POST", "/redrive/start", {"maxMessages": visible})
        assert status == 202, job
    return visible + hidden == 0
