"""The worker's state machine, failure modes and event publishing, through the real handler and moto."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import EndpointConnectionError

from functions.common.canonical import canonical_json, computed_key_for_text, idempotency_key_for
from functions.common.clients import failure_mode_reader_from_env
from functions.common.failure_mode import FailureModeReader, ParameterWithMetadataProvider
from functions.common.names import (
    FAILURE_MODE_PARAMETER,
    DetailType,
    ErrorType,
    MessageAttribute,
    RecordStatus,
)
from functions.common.state_table import StateTable, iso
from functions.worker import handler
from functions.worker.dead_letters import DeadLetterQueue
from functions.worker.events import EventBatch
from functions.worker.processor import (
    RANDOM_FAILURE_PROBABILITY,
    DownstreamTimeoutError,
    InflightElsewhereError,
    RecordProcessor,
)
from tests.unit.functions.sqs_events import sqs_event


def send(stage: Any, payload: Any) -> str:
    """Send as the ingest does (key attribute); a non-JSON body goes without one. Returns the key."""
    if isinstance(payload, str):
        stage.sqs.send_message(QueueUrl=stage.queue_url, MessageBody=payload)
        return computed_key_for_text(payload)
    key = idempotency_key_for(payload)
    stage.sqs.send_message(
        QueueUrl=stage.queue_url,
        MessageBody=json.dumps(payload),
        MessageAttributes={
            MessageAttribute.IDEMPOTENCY_KEY.value: {"DataType": "String", "StringValue": key}
        },
    )
    return key


def order(n: int) -> dict[str, Any]:
    return {"orderId": f"order-{n}", "amount": n}


@pytest.fixture
def run_worker(stage: Any, lambda_context: Any) -> Iterator[Any]:
    handler.dependencies.cache_clear()

    def run() -> tuple[list[str], list[dict[str, Any]]]:
        messages = stage.receive_all(stage.queue_url)
        response = handler.lambda_handler(sqs_event(messages), lambda_context)
        return [failure["itemIdentifier"] for failure in response["batchItemFailures"]], messages

    yield run
    handler.dependencies.cache_clear()


def test_a_clean_batch_succeeds_with_one_event_per_record(run_worker: Any, stage: Any) -> None:
    keys = [send(stage, order(n)) for n in range(3)]
    before = time.time()

    failures, _ = run_worker()

    assert failures == []
    for key in keys:
        item = stage.state(key)
        assert item["status"] == RecordStatus.SUCCEEDED.value
        assert item["attempts"] == 1
        assert "inflightUntil" not in item
        assert before + 3 * 86400 - 5 <= item["expiresAt"] <= time.time() + 3 * 86400 + 5
    events = stage.captured_events()
    assert sorted(e["detail"]["idempotencyKey"] for e in events) == sorted(keys)
    assert {e["detail-type"] for e in events} == {DetailType.SUCCESS.value}


def test_partial_batch_failures_are_exactly_the_failed_records(run_worker: Any, stage: Any) -> None:
    good = [send(stage, order(n)) for n in range(4)]
    bad_payloads = [{"orderId": "", "amount": 1}, "not json at all", {"amount": -1}]
    bad = [send(stage, payload) for payload in bad_payloads]
    bad_bodies = {payload if isinstance(payload, str) else json.dumps(payload) for payload in bad_payloads}

    failures, messages = run_worker()

    assert len(messages) == 7
    assert sorted(failures) == sorted(m["MessageId"] for m in messages if m["Body"] in bad_bodies)
    for key in good:
        assert stage.state(key)["status"] == RecordStatus.SUCCEEDED.value
    for key in bad:
        item = stage.state(key)
        assert (item["status"], item["errorType"]) == (
            RecordStatus.FAILED.value,
            ErrorType.SCHEMA_VALIDATION.value,
        )
    events = stage.captured_events()
    failure_events = [e for e in events if e["detail-type"] == DetailType.FAILURE.value]
    assert len(failure_events) == 3
    assert {e["detail"]["errorType"] for e in failure_events} == {ErrorType.SCHEMA_VALIDATION.value}


def test_duplicate_of_succeeded_key_is_a_success_without_write_or_event(run_worker: Any, stage: Any) -> None:
    key = send(stage, order(1))
    run_worker()
    first = stage.state(key)
    stage.captured_events()

    send(stage, order(1))
    failures, _ = run_worker()

    assert failures == []
    assert stage.state(key) == first
    assert stage.captured_events() == []


def test_key_inflight_elsewhere_is_a_batch_item_failure(run_worker: Any, stage: Any) -> None:
    key = send(stage, order(7))
    stage.dynamodb.put_item(
        TableName=stage.table_name,
        Item={
            "idempotencyKey": {"S": key},
            "status": {"S": "INFLIGHT"},
            "attempts": {"N": "1"},
            "inflightUntil": {"N": str(int(time.time()) + 300)},
        },
    )

    failures, messages = run_worker()

    assert failures == [messages[0]["MessageId"]]
    assert stage.state(key)["status"] == "INFLIGHT"
    assert stage.captured_events() == []


def test_stale_inflight_is_taken_over(run_worker: Any, stage: Any) -> None:
    key = send(stage, order(8))
    stage.dynamodb.put_item(
        TableName=stage.table_name,
        Item={
            "idempotencyKey": {"S": key},
            "status": {"S": "INFLIGHT"},
            "attempts": {"N": "1"},
            "firstSeenAt": {"S": "2026-01-01T00:00:00.000Z"},
            "inflightUntil": {"N": str(int(time.time()) - 10)},
        },
    )

    failures, _ = run_worker()

    assert failures == []
    item = stage.state(key)
    assert (item["status"], item["attempts"], item["firstSeenAt"]) == (
        "SUCCEEDED",
        2,
        "2026-01-01T00:00:00.000Z",
    )


def test_failed_record_is_retried_and_keeps_its_redrive_count(run_worker: Any, stage: Any) -> None:
    key = send(stage, order(9))
    stage.dynamodb.put_item(
        TableName=stage.table_name,
        Item={
            "idempotencyKey": {"S": key},
            "status": {"S": "FAILED"},
            "errorType": {"S": ErrorType.TRANSIENT.value},
            "attempts": {"N": "3"},
            "redriveCount": {"N": "1"},
        },
    )

    failures, _ = run_worker()

    assert failures == []
    item = stage.state(key)
    assert (item["status"], item["attempts"], item["redriveCount"]) == ("SUCCEEDED", 4, 1)
    assert "errorType" not in item


def test_poison_payload_fails_every_record(run_worker: Any, stage: Any) -> None:
    stage.set_failure_mode("poison_payload")
    keys = [send(stage, order(n)) for n in range(3)]

    failures, messages = run_worker()

    assert sorted(failures) == sorted(m["MessageId"] for m in messages)
    for key in keys:
        assert stage.state(key)["errorType"] == ErrorType.SCHEMA_VALIDATION.value


def test_expired_failure_mode_is_ignored(run_worker: Any, stage: Any) -> None:
    stage.set_failure_mode(
        json.dumps({"mode": "poison_payload", "expiresAt": time.time() - 1, "setBy": "test"})
    )
    send(stage, order(1))
    failures, _ = run_worker()
    assert failures == []


def test_disabled_injection_ignores_the_mode(
    run_worker: Any, stage: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAILURE_INJECTION_ENABLED", "false")
    stage.set_failure_mode("poison_payload")
    send(stage, order(1))
    failures, _ = run_worker()
    assert failures == []


def _processor(
    stage: Any,
    events: EventBatch,
    *,
    rng: random.Random | None = None,
    sleep: Any = time.sleep,
    remaining_ms: int = 30_000,
    clock: Any = time.time,
    state: StateTable | None = None,
) -> RecordProcessor:
    """A processor for one batch, with the mode read once from the parameter as the handler does."""
    reader = FailureModeReader(
        ParameterWithMetadataProvider(stage.ssm),
        parameter_name=FAILURE_MODE_PARAMETER,
        enabled=True,
        cache_seconds=0,
    )
    return RecordProcessor(
        state=state or StateTable(stage.dynamodb, stage.table_name, ttl_days=1),
        mode=reader.current().mode,
        events=events,
        dead_letters=DeadLetterQueue(stage.sqs, stage.dlq_url),
        remaining_ms=lambda: remaining_ms,
        rng=rng,
        sleep=sleep,
        clock=clock,
    )


def test_random_fail_p30_fails_exactly_the_seeded_draws(stage: Any, lambda_context: Any) -> None:
    stage.set_failure_mode("random_fail_p30")
    for n in range(20):
        send(stage, order(n))
    messages = stage.receive_all(stage.queue_url)
    draws = random.Random(42)
    expected = [m["MessageId"] for m in messages if draws.random() < RANDOM_FAILURE_PROBABILITY]
    events = EventBatch(stage.events, stage.bus_name)

    response = process_partial_response(
        event=sqs_event(messages),
        record_handler=_processor(stage, events, rng=random.Random(42)).process,
        processor=BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False),
        context=lambda_context,
    )

    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == expected
    assert 0 < len(expected) < 20
    assert len(events) == 20


class FakeEventsClient:
    def __init__(self, reject_first_time: set[str], reject_always: set[str]) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self._seen: set[str] = set()
        self._reject_first = reject_first_time
        self._reject_always = reject_always

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Entries)
        results = []
        for entry in Entries:
            key = json.loads(entry["Detail"])["idempotencyKey"]
            rejected = key in self._reject_always or (key in self._reject_first and key not in self._seen)
            self._seen.add(key)
            results.append(
                {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}
                if rejected
                else {"EventId": key}
            )
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


def test_put_events_chunks_of_ten_with_one_retry_of_failed_entries() -> None:
    client = FakeEventsClient(reject_first_time={"k3", "k15"}, reject_always={"k21"})
    batch = EventBatch(client, "bus")
    published: list[int] = []
    for n in range(23):
        batch.add(
            DetailType.SUCCESS,
            {"idempotencyKey": f"k{n}"},
            message_id=f"m{n}",
            on_published=partial(published.append, n),
        )

    outcome = batch.publish()

    sizes = [len(call) for call in client.calls]
    assert sizes == [10, 1, 10, 1, 3, 1]
    assert all(size <= 10 for size in sizes)
    assert (outcome.sent, outcome.lost) == (22, 1)
    assert sorted(published) == [n for n in range(23) if n != 21]
    assert batch.unpublished_message_ids == ["m21"]
    assert len(batch) == 0


def test_published_marks_of_a_chunk_run_at_once() -> None:
    """The kill window between PutEvents and the marks is one round trip, not one per event."""
    all_marks_started = threading.Barrier(3, timeout=5)
    batch = EventBatch(FakeEventsClient(set(), set()), "bus")
    for n in range(3):
        batch.add(
            DetailType.SUCCESS,
            {"idempotencyKey": f"k{n}"},
            message_id=f"m{n}",
            on_published=all_marks_started.wait,
        )

    assert batch.publish().sent == 3


def test_put_events_transport_error_is_logged_not_raised() -> None:
    class Broken:
        def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            from botocore.exceptions import EndpointConnectionError

            raise EndpointConnectionError(endpoint_url="https://events")

    batch = EventBatch(Broken(), "bus")
    batch.add(DetailType.FAILURE, {"idempotencyKey": "k"}, message_id="m", on_published=pytest.fail)
    assert batch.publish().lost == 1
    assert batch.unpublished_message_ids == ["m"]


def test_slow_downstream_sleeps_past_the_deadline_after_flushing_events(
    stage: Any, lambda_context: Any
) -> None:
    first = send(stage, order(1))
    slow = send(stage, order(2))
    messages = stage.receive_all(stage.queue_url)
    events = EventBatch(stage.events, stage.bus_name)
    naps: list[float] = []

    def sleep_until_killed(seconds: float) -> None:
        # What is true when the runtime kills the invocation during this sleep:
        item = stage.state(slow)
        assert (item["status"], item["errorType"]) == ("INFLIGHT", ErrorType.TIMEOUT.value)
        assert [e["detail"]["idempotencyKey"] for e in stage.captured_events()] == [first]
        naps.append(seconds)

    # The first record settled earlier in the same batch (its event waits in the batch's EventBatch).
    _processor(stage, events).process(SQSRecord(sqs_event(messages[:1])["Records"][0]))
    stage.set_failure_mode("slow_downstream")
    processor = _processor(stage, events, sleep=sleep_until_killed, remaining_ms=4_000)
    with pytest.raises(DownstreamTimeoutError):
        processor.process(SQSRecord(sqs_event(messages[1:])["Records"][0]))

    assert naps == [5.0]


def test_a_lease_taken_over_mid_processing_is_not_overwritten(stage: Any) -> None:
    key = send(stage, order(1))
    messages = stage.receive_all(stage.queue_url)
    events = EventBatch(stage.events, stage.bus_name)

    class TakeoverDuringProcessing(StateTable):
        def succeed(self, idempotency_key: str, **kwargs: Any) -> bool:
            # Another delivery takes the (expired) lease while this one is still working.
            stage.dynamodb.update_item(
                TableName=stage.table_name,
                Key={"idempotencyKey": {"S": key}},
                UpdateExpression="SET attempts = :n",
                ExpressionAttributeValues={":n": {"N": "2"}},
            )
            return super().succeed(idempotency_key, **kwargs)

    processor = _processor(
        stage, events, state=TakeoverDuringProcessing(stage.dynamodb, stage.table_name, ttl_days=1)
    )
    with pytest.raises(InflightElsewhereError):
        processor.process(SQSRecord(sqs_event(messages)["Records"][0]))

    assert (stage.state(key)["status"], stage.state(key)["attempts"]) == ("INFLIGHT", 2)
    assert len(events) == 0


# --- the success event outbox: a killed invocation loses no event -----------------------------------
def settle_without_publishing(stage: Any, messages: list[dict[str, Any]], *, at: float) -> None:
    """What a batch killed after settling its records and before PutEvents leaves behind."""
    processor = _processor(stage, EventBatch(stage.events, stage.bus_name), clock=lambda: at)
    for record in sqs_event(messages)["Records"]:
        processor.process(SQSRecord(record))
    # The visibility timeout elapsing, without the wait: SQS delivers the batch again.
    for message in messages:
        stage.sqs.change_message_visibility(
            QueueUrl=stage.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )


def success_events(stage: Any) -> list[dict[str, Any]]:
    return [e["detail"] for e in stage.captured_events() if e["detail-type"] == DetailType.SUCCESS.value]


def test_events_of_a_killed_batch_are_published_once_by_its_redelivery(run_worker: Any, stage: Any) -> None:
    keys = [send(stage, order(n)) for n in range(3)]
    messages = stage.receive_all(stage.queue_url)
    killed_at = time.time() - 120  # its 30-second deadline is long past at the redelivery
    settle_without_publishing(stage, messages, at=killed_at)
    for key in keys:
        item = stage.state(key)
        assert (item["status"], item["eventPublished"]) == (RecordStatus.SUCCEEDED.value, False)
    assert stage.captured_events() == []

    failures, redelivered = run_worker()

    assert failures == []
    assert sorted(m["MessageId"] for m in redelivered) == sorted(m["MessageId"] for m in messages)
    message_id_of = {json.loads(m["Body"])["orderId"]: m["MessageId"] for m in messages}
    expected = [
        {
            "idempotencyKey": key,
            "messageId": message_id_of[f"order-{n}"],
            "status": RecordStatus.SUCCEEDED.value,
            "attempts": 1,
            "processedAt": iso(killed_at),
        }
        for n, key in enumerate(keys)
    ]
    assert sorted(success_events(stage), key=lambda d: d["idempotencyKey"]) == sorted(
        expected, key=lambda d: d["idempotencyKey"]
    )
    for key in keys:
        item = stage.state(key)
        assert (item["status"], item["eventPublished"], item["attempts"]) == ("SUCCEEDED", True, 1)
        assert "eventDetail" not in item
        assert "inflightUntil" not in item

    # A further copy of a published key stays silent.
    send(stage, order(0))
    assert run_worker()[0] == []
    assert stage.captured_events() == []


def test_a_duplicate_before_the_deadline_leaves_the_event_to_its_live_invocation(
    stage: Any,
) -> None:
    key = send(stage, order(1))
    messages = stage.receive_all(stage.queue_url)
    first = EventBatch(stage.events, stage.bus_name)
    _processor(stage, first).process(SQSRecord(sqs_event(messages)["Records"][0]))

    send(stage, order(1))
    duplicate = EventBatch(stage.events, stage.bus_name)
    _processor(stage, duplicate).process(
        SQSRecord(sqs_event(stage.receive_all(stage.queue_url))["Records"][0])
    )

    assert len(duplicate) == 0
    assert stage.state(key)["eventPublished"] is False
    first.publish()
    assert [d["idempotencyKey"] for d in success_events(stage)] == [key]
    assert stage.state(key)["eventPublished"] is True


def test_concurrent_redeliveries_of_an_orphaned_event_publish_it_once(stage: Any) -> None:
    key = send(stage, order(1))
    messages = stage.receive_all(stage.queue_url)
    settle_without_publishing(stage, messages, at=time.time() - 120)
    record = SQSRecord(sqs_event(messages)["Records"][0])
    batches = [EventBatch(stage.events, stage.bus_name) for _ in range(2)]

    for batch in batches:
        _processor(stage, batch).process(record)

    assert [len(batch) for batch in batches] == [1, 0]
    batches[0].publish()
    assert [d["idempotencyKey"] for d in success_events(stage)] == [key]


class RefusingEvents:
    """The moto events client, refusing (FailedEntryCount) every entry of the given keys."""

    def __init__(self, events: Any, refuse_keys: set[str]) -> None:
        self._events = events
        self._refuse = refuse_keys

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        accepted = [e for e in Entries if json.loads(e["Detail"])["idempotencyKey"] not in self._refuse]
        ids = iter(self._events.put_events(Entries=accepted)["Entries"] if accepted else [])
        results = [
            {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}
            if json.loads(e["Detail"])["idempotencyKey"] in self._refuse
            else next(ids)
            for e in Entries
        ]
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


def test_refused_events_are_unmarked_batch_failures_and_resent_on_redelivery(
    stage: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = send(stage, order(1))
    accepted = send(stage, order(2))
    handler.dependencies.cache_clear()
    deps = replace(handler.dependencies(), events_client=RefusingEvents(stage.events, {refused}))
    handler.dependencies.cache_clear()
    monkeypatch.setattr(handler, "dependencies", lambda: deps)
    messages = stage.receive_all(stage.queue_url)

    response = handler.lambda_handler(sqs_event(messages), lambda_context)

    failures = [failure["itemIdentifier"] for failure in response["batchItemFailures"]]
    message_of = {json.loads(m["Body"])["orderId"]: m for m in messages}
    assert failures == [message_of["order-1"]["MessageId"]]
    assert [d["idempotencyKey"] for d in success_events(stage)] == [accepted]
    assert (stage.state(accepted)["eventPublished"], stage.state(refused)["eventPublished"]) == (True, False)

    # SQS delivers the failed record again after its visibility timeout, past the deadline.
    later = EventBatch(stage.events, stage.bus_name)
    _processor(stage, later, clock=lambda: time.time() + 120).process(
        SQSRecord(sqs_event([message_of["order-1"]])["Records"][0])
    )
    later.publish()

    [resent] = success_events(stage)
    assert (resent["idempotencyKey"], resent["messageId"]) == (refused, message_of["order-1"]["MessageId"])
    assert resent["processedAt"] == stage.state(refused)["processedAt"]
    assert stage.state(refused)["eventPublished"] is True


# --- a key reused with another payload (issue 11, item 1) --------------------------------------------------
def send_with_key(stage: Any, payload: dict[str, Any], key: str) -> None:
    """As the ingest sends a client-keyed event: the canonical body carries the key field too."""
    stage.sqs.send_message(
        QueueUrl=stage.queue_url,
        MessageBody=canonical_json({**payload, "idempotencyKey": key}),
        MessageAttributes={
            MessageAttribute.IDEMPOTENCY_KEY.value: {"DataType": "String", "StringValue": key}
        },
    )


def test_a_reused_key_with_another_payload_is_a_visible_conflict(
    run_worker: Any, stage: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    send_with_key(stage, order(1), "client-key-1")
    assert run_worker()[0] == []
    first = stage.state("client-key-1")
    stage.captured_events()

    send_with_key(stage, {"orderId": "order-1", "amount": 999}, "client-key-1")
    failures, [conflicting] = run_worker()

    assert failures == []  # parked in the DLQ by the worker: nothing left to retry on the main queue
    assert stage.state("client-key-1") == first
    [parked] = stage.receive_all(stage.dlq_url)
    assert parked["Body"] == conflicting["Body"]
    attributes = {name: value["StringValue"] for name, value in parked["MessageAttributes"].items()}
    assert attributes[MessageAttribute.ERROR_TYPE.value] == ErrorType.IDEMPOTENCY_CONFLICT.value
    assert attributes[MessageAttribute.IDEMPOTENCY_KEY.value] == "client-key-1"
    [event] = stage.captured_events()
    assert (event["detail-type"], event["detail"]["errorType"]) == (
        DetailType.FAILURE.value,
        ErrorType.IDEMPOTENCY_CONFLICT.value,
    )
    assert event["detail"]["messageId"] == conflicting["MessageId"]
    assert '"IdempotencyConflicts":[1.0]' in capsys.readouterr().out


def test_a_conflict_with_a_failed_record_leaves_it_for_its_own_retry(run_worker: Any, stage: Any) -> None:
    stage.set_failure_mode("poison_payload")
    send_with_key(stage, order(2), "client-key-2")
    assert len(run_worker()[0]) == 1
    failed = stage.state("client-key-2")
    stage.set_failure_mode("none")
    for message in stage.receive_all(stage.queue_url):  # out of the way: a later retry, not this test's
        stage.sqs.delete_message(QueueUrl=stage.queue_url, ReceiptHandle=message["ReceiptHandle"])

    send_with_key(stage, {"orderId": "order-2", "amount": 3}, "client-key-2")
    assert run_worker()[0] == []

    assert stage.state("client-key-2") == failed  # attempts, status, checksum: untouched
    assert stage.depth(stage.dlq_url) == 1


def test_the_same_order_with_its_key_in_body_or_header_is_a_duplicate_not_a_conflict(
    run_worker: Any, stage: Any
) -> None:
    send_with_key(stage, order(3), "client-key-3")
    run_worker()
    # The header form: the ingest's canonical body has no idempotencyKey field.
    stage.sqs.send_message(
        QueueUrl=stage.queue_url,
        MessageBody=canonical_json(order(3)),
        MessageAttributes={
            MessageAttribute.IDEMPOTENCY_KEY.value: {"DataType": "String", "StringValue": "client-key-3"}
        },
    )
    assert run_worker()[0] == []
    assert stage.depth(stage.dlq_url) == 0
    assert stage.state("client-key-3")["attempts"] == 1


def test_a_conflict_the_dlq_refuses_comes_back(stage: Any) -> None:
    send_with_key(stage, order(4), "client-key-4")
    send_with_key(stage, {"orderId": "order-4", "amount": 5}, "client-key-4")
    first, second = (SQSRecord(r) for r in sqs_event(stage.receive_all(stage.queue_url))["Records"])
    _processor(stage, EventBatch(stage.events, stage.bus_name)).process(first)

    class RefusingDlq(DeadLetterQueue):
        def park(self, record: SQSRecord, error_type: ErrorType) -> str:
            raise EndpointConnectionError(endpoint_url="https://sqs")

    processor = _processor(stage, EventBatch(stage.events, stage.bus_name))
    processor._dead_letters = RefusingDlq(stage.sqs, stage.dlq_url)
    with pytest.raises(EndpointConnectionError):  # a batch item failure: SQS delivers it again
        processor.process(second)


def test_records_a_batch_leaves_inflight_carry_a_ttl(stage: Any) -> None:
    key = send(stage, order(5))
    [message] = stage.receive_all(stage.queue_url)
    before = time.time()
    stage.set_failure_mode("slow_downstream")

    class Killed(BaseException):
        """The runtime ending the invocation during the sleep: nothing after it runs."""

    def killed(seconds: float) -> None:
        raise Killed

    processor = _processor(stage, EventBatch(stage.events, stage.bus_name), sleep=killed)
    with pytest.raises(Killed):
        processor.process(SQSRecord(sqs_event([message])["Records"][0]))
    item = stage.state(key)
    assert item["status"] == RecordStatus.INFLIGHT.value
    assert before + 86400 - 5 <= item["expiresAt"] <= time.time() + 86400 + 5


# --- failure-mode reads are bounded (issue 11, item 7) ----------------------------------------------------
class CountingSsm:
    """The moto SSM client, counting GetParameter calls."""

    def __init__(self, ssm: Any) -> None:
        self._ssm = ssm
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ssm, name)

    def get_parameter(self, **kwargs: Any) -> Any:
        self.reads += 1
        return self._ssm.get_parameter(**kwargs)


def test_the_mode_is_read_once_per_batch_not_per_record(
    stage: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(10):
        send(stage, order(n))
    ssm = CountingSsm(stage.ssm)
    handler.dependencies.cache_clear()
    deps = replace(handler.dependencies(), failure_modes=failure_mode_reader_from_env(ssm))
    monkeypatch.setattr(handler, "dependencies", lambda: deps)

    response = handler.lambda_handler(sqs_event(stage.receive_all(stage.queue_url)), lambda_context)

    assert response["batchItemFailures"] == []
    assert ssm.reads == 1  # FAILURE_MODE_CACHE_SECONDS is 0 here: every read is a real one
