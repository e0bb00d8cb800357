"""Ingest -> queue -> worker -> state and events in one process: duplicates, poison then redrive."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from functions.common.names import DetailType, ErrorType, RecordStatus
from functions.ingest import handler as ingest
from functions.redrive.job_store import JobStore
from functions.redrive.jobs import RedriveJobs
from functions.redrive.mover import DlqMover, Pacer
from functions.redrive.params import RedriveParams
from functions.reset import handler as reset
from functions.worker import handler as worker
from functions.worker.events import EventBatch
from functions.worker.processor import RecordProcessor
from tests.unit.functions.http_events import JSON_HEADERS, http_event
from tests.unit.functions.sqs_events import sqs_event


@pytest.fixture(autouse=True)
def _fresh_dependencies() -> Any:
    for cached in (ingest.service, worker.dependencies, reset.ssm_client):
        cached.cache_clear()
    yield
    for cached in (ingest.service, worker.dependencies, reset.ssm_client):
        cached.cache_clear()


def post(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    event = http_event("POST", "/events", body=json.dumps(payload), headers=JSON_HEADERS)
    response = ingest.lambda_handler(event, context)
    assert response["statusCode"] == 202, response
    return json.loads(response["body"])


def drain_through_worker(stage: Any, context: Any) -> list[str]:
    messages = stage.receive_all(stage.queue_url)
    response = worker.lambda_handler(sqs_event(messages), context)
    failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
    for message in messages:
        if message["MessageId"] not in failed:
            # What the event source mapping does with the successes of a partial batch response.
            stage.sqs.delete_message(QueueUrl=stage.queue_url, ReceiptHandle=message["ReceiptHandle"])
        else:
            # The visibility timeout elapsing, without the wait.
            stage.sqs.change_message_visibility(
                QueueUrl=stage.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
    return sorted(failed)


def test_duplicate_submit_gives_one_record_and_one_success_event_per_key(
    stage: Any, lambda_context: Any
) -> None:
    stage.set_failure_mode("duplicate_submit")
    keys = {post({"orderId": f"o-{n}", "amount": n}, lambda_context)["idempotencyKey"] for n in range(4)}
    assert stage.depth(stage.queue_url) == 8

    assert drain_through_worker(stage, lambda_context) == []

    assert stage.depth(stage.queue_url) == 0
    success = [e for e in stage.captured_events() if e["detail-type"] == DetailType.SUCCESS.value]
    assert sorted(e["detail"]["idempotencyKey"] for e in success) == sorted(keys)
    assert {stage.state(key)["attempts"] for key in keys} == {1}


def test_duplicate_submit_through_a_killed_batch_still_gives_one_success_event_per_key(
    stage: Any, lambda_context: Any
) -> None:
    stage.set_failure_mode("duplicate_submit")
    keys = {post({"orderId": f"k-{n}", "amount": n}, lambda_context)["idempotencyKey"] for n in range(3)}
    messages = stage.receive_all(stage.queue_url)
    assert len(messages) == 6
    # The invocation settles every record, then the runtime kills it before its PutEvents.
    killed = RecordProcessor(
        state=worker.dependencies().state,
        mode=worker.dependencies().failure_modes.current().mode,
        events=EventBatch(stage.events, stage.bus_name),
        dead_letters=worker.dependencies().dead_letters,
        remaining_ms=lambda: 3_000,
        clock=lambda: time.time() - 60,
    )
    for record in sqs_event(messages)["Records"]:
        killed.process(SQSRecord(record))
    for message in messages:
        stage.sqs.change_message_visibility(
            QueueUrl=stage.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    assert stage.captured_events() == []

    assert drain_through_worker(stage, lambda_context) == []

    success = [e for e in stage.captured_events() if e["detail-type"] == DetailType.SUCCESS.value]
    assert sorted(e["detail"]["idempotencyKey"] for e in success) == sorted(keys)
    assert {stage.state(key)["eventPublished"] for key in keys} == {True}
    assert stage.depth(stage.queue_url) == 0


def test_poison_then_reset_then_redrive_recovers(stage: Any, lambda_context: Any) -> None:
    stage.set_failure_mode("poison_payload")
    key = post({"orderId": "p-1", "amount": 1}, lambda_context)["idempotencyKey"]
    [failed_id] = drain_through_worker(stage, lambda_context)
    assert stage.state(key)["errorType"] == ErrorType.SCHEMA_VALIDATION.value
    # maxReceiveCount reached: the message sits in the DLQ (moved by hand, as SQS would).
    [message] = stage.receive_all(stage.queue_url)
    assert message["MessageId"] == failed_id
    stage.sqs.send_message(
        QueueUrl=stage.dlq_url,
        MessageBody=message["Body"],
        MessageAttributes={
            name: {"DataType": value["DataType"], "StringValue": value["StringValue"]}
            for name, value in message["MessageAttributes"].items()
        },
    )
    stage.sqs.delete_message(QueueUrl=stage.queue_url, ReceiptHandle=message["ReceiptHandle"])

    reset.lambda_handler({}, lambda_context)

    mover = DlqMover(
        sqs=stage.sqs,
        state=worker.dependencies().state,
        dlq_url=stage.dlq_url,
        queue_url=stage.queue_url,
        quarantine_url=stage.quarantine_url,
        max_redrives_per_message=3,
        wait_seconds=0,
    )
    jobs = RedriveJobs(
        store=JobStore(stage.dynamodb, stage.jobs_table_name, ttl_days=1),
        mover=mover,
        start_async=lambda job_id: None,
        pacer_factory=lambda: Pacer(100),
    )
    job = jobs.start(
        RedriveParams(max_messages=10, filter_error_types=frozenset({ErrorType.SCHEMA_VALIDATION.value}))
    )
    assert jobs.run(job.job_id, lambda: 600_000).counters.moved == 1

    assert drain_through_worker(stage, lambda_context) == []
    item = stage.state(key)
    assert (item["status"], item["attempts"], item["redriveCount"]) == (RecordStatus.SUCCEEDED.value, 2, 1)
    assert stage.depth(stage.dlq_url) == 0


def post_raw(payload: dict[str, Any], context: Any) -> tuple[int, dict[str, Any]]:
    event = http_event("POST", "/events", body=json.dumps(payload), headers=JSON_HEADERS)
    response = ingest.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def test_a_reused_client_key_is_refused_at_ingest_and_caught_by_the_worker_in_a_race(
    stage: Any, lambda_context: Any
) -> None:
    first = {"orderId": "r-1", "amount": 10, "idempotencyKey": "order-r-1"}
    second = {**first, "amount": 11}
    # Two requests at once: neither finds a record, both are queued.
    assert post_raw(first, lambda_context)[0] == 202
    assert post_raw(second, lambda_context)[0] == 202

    assert drain_through_worker(stage, lambda_context) == []

    record = stage.state("order-r-1")
    assert record["status"] == RecordStatus.SUCCEEDED.value
    [parked] = stage.receive_all(stage.dlq_url)
    assert json.loads(parked["Body"])["amount"] in {10, 11}
    assert parked["MessageAttributes"]["errorType"]["StringValue"] == ErrorType.IDEMPOTENCY_CONFLICT.value
    # Later requests meet the record: the other payload is a 409 at once, the same one a retry.
    kept = next(p for p in (first, second) if p["amount"] != json.loads(parked["Body"])["amount"])
    reused = second if kept is first else first
    status, body = post_raw(reused, lambda_context)
    assert (status, body["error"]) == (409, "idempotency_conflict")
    assert post_raw(kept, lambda_context)[0] == 202
