"""The worker's state machine, failure modes, writes per record and conflicts, through the real
handler and moto; the events of settled records come through the relay (tests/unit/functions/
stream_relay.py runs it over the table's stream as the event source mapping does)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from functions.common.canonical import canonical_json
from functions.common.clients import failure_mode_reader_from_env
from functions.common.events import EventPublisher
from functions.common.failure_mode import FailureModeReader
from functions.common.names import (
    FAILURE_MODE_PARAMETER,
    DetailType,
    ErrorType,
    MessageAttribute,
    RecordStatus,
)
from functions.common.parameter_provider import ParameterWithMetadataProvider
from functions.common.state_table import StateRecord, StateTable
from functions.relay import handler as relay_handler
from functions.worker import handler
from functions.worker.dead_letters import DeadLetterQueue
from functions.worker.processor import (
    DEADLINE_RESERVE_MS,
    RANDOM_FAILURE_PROBABILITY,
    ConflictNotAnnouncedError,
    DeadlineNearError,
    DownstreamTimeoutError,
    InflightElsewhereError,
    RecordProcessor,
)
from functions.worker.sqs_record import SqsRecord
from tests.unit.functions.orders import CountingClient, order, send, send_with_key
from tests.unit.functions.sqs_events import sqs_event
from tests.unit.functions.stream_relay import Killed, StreamMapping

# The cached builder itself: tests replace handler.dependencies, and fixtures tear down in any order.
CACHED_DEPENDENCIES = handler.dependencies


@pytest.fixture
def counted_dynamodb(stage: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingClient]:
    """The worker's DynamoDB client, counting its calls."""
    CACHED_DEPENDENCIES.cache_clear()
    counting = CountingClient(stage.dynamodb)
    deps = handler.dependencies()
    deps = replace(deps, state=StateTable(counting, stage.table_name, ttl_days=3))
    monkeypatch.setattr(handler, "dependencies", lambda: deps)
    yield counting
    CACHED_DEPENDENCIES.cache_clear()


@pytest.fixture
def run_worker(stage: Any, lambda_context: Any) -> Iterator[Any]:
    """One worker invocation over everything visible on the main queue."""
    CACHED_DEPENDENCIES.cache_clear()

    def run() -> tuple[list[str], list[dict[str, Any]]]:
        messages = stage.receive_all(stage.queue_url)
        response = handler.lambda_handler(sqs_event(messages), lambda_context)
        return [failure["itemIdentifier"] for failure in response["batchItemFailures"]], messages

    yield run
    CACHED_DEPENDENCIES.cache_clear()


@pytest.fixture
def relay(stage: Any, lambda_context: Any) -> Iterator[Any]:
    """Runs the relay over the state table's stream until it is caught up; returns the new events."""
    relay_handler.relay.cache_clear()
    mapping = StreamMapping(stage.table_name)

    def run() -> list[dict[str, Any]]:
        mapping.drain(lambda event: relay_handler.lambda_handler(event, lambda_context))
        return stage.captured_events()

    yield run
    relay_handler.relay.cache_clear()


def test_a_clean_batch_succeeds_with_one_event_per_record(run_worker: Any, relay: Any, stage: Any) -> None:
    keys = [send(stage, order(n)) for n in range(3)]
    before = time.time()

    failures, messages = run_worker()

    assert failures == []
    for key in keys:
        item = stage.state(key)
        assert item["status"] == RecordStatus.SUCCEEDED.value
        assert item["attempts"] == 1
        assert "inflightUntil" not in item
        assert before + 3 * 86400 - 5 <= item["expiresAt"] <= time.time() + 3 * 86400 + 5
    assert stage.captured_events() == []  # the worker publishes no outcome itself
    events = relay()
    assert sorted(e["detail"]["idempotencyKey"] for e in events) == sorted(keys)
    assert {e["detail-type"] for e in events} == {DetailType.SUCCESS.value}
    message_of = {json.loads(m["Body"])["orderId"]: m["MessageId"] for m in messages}
    for n, key in enumerate(keys):
        [detail] = [e["detail"] for e in events if e["detail"]["idempotencyKey"] == key]
        item = stage.state(key)
        assert detail == {
            "eventId": detail["eventId"],
            "idempotencyKey": key,
            "messageId": message_of[f"order-{n}"],
            "status": RecordStatus.SUCCEEDED.value,
            "attempts": 1,
            "processedAt": item["processedAt"],
        }
    assert len({e["detail"]["eventId"] for e in events}) == 3


def test_partial_batch_failures_are_exactly_the_failed_records(
    run_worker: Any, relay: Any, stage: Any
) -> None:
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
    events = relay()
    failure_events = [e for e in events if e["detail-type"] == DetailType.FAILURE.value]
    assert sorted(e["detail"]["idempotencyKey"] for e in failure_events) == sorted(bad)
    assert {e["detail"]["errorType"] for e in failure_events} == {ErrorType.SCHEMA_VALIDATION.value}
    assert {e["detail"]["attempts"] for e in failure_events} == {1}


def test_a_new_event_costs_two_writes_and_a_duplicate_none(
    run_worker: Any, relay: Any, stage: Any, counted_dynamodb: CountingClient
) -> None:
    keys = [send(stage, order(n)) for n in range(4)]
    assert run_worker()[0] == []
    assert (counted_dynamodb.writes, counted_dynamodb.calls["batch_get_item"]) == (8, 1)
    first = {key: stage.state(key) for key in keys}
    assert len(relay()) == 4

    counted_dynamodb.calls.clear()
    for n in range(4):
        send(stage, order(n))
    failures, _ = run_worker()

    assert failures == []
    assert (counted_dynamodb.writes, counted_dynamodb.calls["batch_get_item"]) == (0, 1)
    assert {key: stage.state(key) for key in keys} == first
    assert relay() == []


def test_two_copies_of_a_key_in_one_batch_are_settled_once(
    run_worker: Any, relay: Any, stage: Any, counted_dynamodb: CountingClient
) -> None:
    key = send(stage, order(1))
    send(stage, order(1))

    assert run_worker()[0] == []

    assert counted_dynamodb.writes == 2
    assert stage.state(key)["attempts"] == 1
    assert [e["detail"]["idempotencyKey"] for e in relay()] == [key]


def test_a_failed_batch_read_leaves_the_decision_to_the_conditional_writes(
    run_worker: Any, stage: Any, counted_dynamodb: CountingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = send(stage, order(1))
    run_worker()
    send(stage, order(1))

    def throttled(**kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "BatchGetItem")

    monkeypatch.setattr(counted_dynamodb._client, "batch_get_item", throttled)
    counted_dynamodb.calls.clear()

    assert run_worker()[0] == []

    assert counted_dynamodb.writes == 1  # the begin that found the key SUCCEEDED
    assert stage.state(key)["attempts"] == 1


def test_key_inflight_elsewhere_is_a_batch_item_failure(
    run_worker: Any, relay: Any, stage: Any, counted_dynamodb: CountingClient
) -> None:
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
    assert counted_dynamodb.writes == 0  # the batch's read showed the live lease
    assert relay() == []


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
    *,
    rng: random.Random | None = None,
    sleep: Any = time.sleep,
    remaining_ms: int | Callable[[], int] = 30_000,
    clock: Any = time.time,
    state: StateTable | None = None,
    known: dict[str, StateRecord] | None = None,
    events_client: Any = None,
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
        known={} if known is None else known,
        conflict_events=EventPublisher(events_client or stage.events, stage.bus_name),
        dead_letters=DeadLetterQueue(stage.sqs, stage.dlq_url),
        remaining_ms=remaining_ms if callable(remaining_ms) else lambda: remaining_ms,
        rng=rng,
        sleep=sleep,
        clock=clock,
    )


def test_random_fail_p30_fails_exactly_the_seeded_draws(stage: Any, lambda_context: Any) -> None:
    stage.set_failure_mode("random_fail_p30")
    keys = [send(stage, order(n)) for n in range(20)]
    messages = stage.receive_all(stage.queue_url)
    draws = random.Random(42)
    expected = [m["MessageId"] for m in messages if draws.random() < RANDOM_FAILURE_PROBABILITY]

    response = handler.partial_batch_response(
        sqs_event(messages)["Records"], _processor(stage, rng=random.Random(42)).process
    )

    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == expected
    assert 0 < len(expected) < 20
    statuses = [stage.state(key)["status"] for key in keys]
    assert statuses.count(RecordStatus.FAILED.value) == len(expected)


def test_slow_downstream_sleeps_past_the_deadline_with_the_batch_so_far_committed(
    stage: Any, relay: Any
) -> None:
    first = send(stage, order(1))
    slow = send(stage, order(2))
    messages = stage.receive_all(stage.queue_url)
    naps: list[float] = []

    def sleep_until_killed(seconds: float) -> None:
        # What is true when the runtime kills the invocation during this sleep: the record settled
        # earlier in the batch is committed, so its event is the relay's to publish, whatever follows.
        item = stage.state(slow)
        assert (item["status"], item["errorType"]) == ("INFLIGHT", ErrorType.TIMEOUT.value)
        assert [e["detail"]["idempotencyKey"] for e in relay()] == [first]
        naps.append(seconds)

    _processor(stage).process(SqsRecord(sqs_event(messages[:1])["Records"][0]))
    stage.set_failure_mode("slow_downstream")
    processor = _processor(stage, sleep=sleep_until_killed, remaining_ms=4_000)
    with pytest.raises(DownstreamTimeoutError):
        processor.process(SqsRecord(sqs_event(messages[1:])["Records"][0]))

    assert naps == [5.0]


def test_records_past_the_deadline_reserve_go_back_untouched(
    stage: Any, relay: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The invocation runs short: the records it can no longer settle are item failures with no
    write and no event, so the timeout never cuts the batch (which would return the settled ones too)."""
    keys = [send(stage, order(n)) for n in range(3)]
    messages = stage.receive_all(stage.queue_url)
    # Read when the batch starts (the reserve), then once by each record (its check and lease).
    left = iter([30_000, 30_000, DEADLINE_RESERVE_MS - 1, DEADLINE_RESERVE_MS - 1])
    processor = _processor(stage, remaining_ms=lambda: next(left))

    response = handler.partial_batch_response(sqs_event(messages)["Records"], processor.process)

    returned = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    assert returned == [m["MessageId"] for m in messages[1:]]
    said = [r for r in caplog.records if r.getMessage() == "record returned to the queue"]
    assert [r.messageId for r in said] == returned  # type: ignore[attr-defined]
    assert all(r.reason.startswith("DeadlineNearError") for r in said)  # type: ignore[attr-defined]
    assert stage.state(keys[0])["status"] == RecordStatus.SUCCEEDED.value
    assert [stage.state(key) for key in keys[1:]] == [None, None]
    assert [e["detail"]["idempotencyKey"] for e in relay()] == [keys[0]]
    times = iter([30_000, DEADLINE_RESERVE_MS - 1])
    short = _processor(stage, remaining_ms=lambda: next(times))
    with pytest.raises(DeadlineNearError):
        short.process(SqsRecord(sqs_event(messages[1:])["Records"][0]))


def test_the_reserve_is_an_eighth_of_a_short_invocation_and_spares_known_duplicates(stage: Any) -> None:
    """A 1 s function keeps 125 ms, so it still settles records; a key the batch's read shows
    SUCCEEDED needs no write and is answered as a duplicate however little time is left."""
    fresh, settled = send(stage, order(1)), send(stage, order(2))
    messages = stage.receive_all(stage.queue_url)
    first_left = iter([1_000, 500])
    _processor(stage, remaining_ms=lambda: next(first_left)).process(
        SqsRecord(sqs_event(messages)["Records"][0])
    )
    assert stage.state(fresh)["status"] == RecordStatus.SUCCEEDED.value

    _processor(stage).process(SqsRecord(sqs_event(messages)["Records"][1]))
    known = {
        settled: StateRecord(settled, RecordStatus.SUCCEEDED, 1, checksum=stage.state(settled)["checksum"])
    }
    late = _processor(stage, remaining_ms=lambda: 1, known=known)
    late.process(SqsRecord(sqs_event(messages)["Records"][1]))  # a duplicate: no DeadlineNearError


def test_a_lease_taken_over_mid_processing_is_not_overwritten(stage: Any, relay: Any) -> None:
    key = send(stage, order(1))
    messages = stage.receive_all(stage.queue_url)

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
        stage, state=TakeoverDuringProcessing(stage.dynamodb, stage.table_name, ttl_days=1)
    )
    with pytest.raises(InflightElsewhereError):
        processor.process(SqsRecord(sqs_event(messages)["Records"][0]))

    assert (stage.state(key)["status"], stage.state(key)["attempts"]) == ("INFLIGHT", 2)
    assert relay() == []


# --- a key reused with another payload (issue 11, item 1) --------------------------------------------------
def test_a_reused_key_with_another_payload_is_a_visible_conflict(
    run_worker: Any, relay: Any, stage: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    send_with_key(stage, order(1), "client-key-1")
    assert run_worker()[0] == []
    first = stage.state("client-key-1")
    assert len(relay()) == 1

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
    assert relay() == []  # the first record did not change: the stream has nothing new


def test_a_conflict_whose_event_is_refused_comes_back_unparked(stage: Any) -> None:
    send_with_key(stage, order(6), "client-key-6")
    send_with_key(stage, {"orderId": "order-6", "amount": 7}, "client-key-6")
    first, second = (SqsRecord(r) for r in sqs_event(stage.receive_all(stage.queue_url))["Records"])
    _processor(stage).process(first)

    class Refusing:
        def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "x"}]}

    with pytest.raises(ConflictNotAnnouncedError):  # a batch item failure: SQS delivers it again
        _processor(stage, events_client=Refusing()).process(second)
    assert stage.depth(stage.dlq_url) == 0

    _processor(stage).process(second)  # the redelivery, EventBridge willing again
    assert stage.depth(stage.dlq_url) == 1


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
    first, second = (SqsRecord(r) for r in sqs_event(stage.receive_all(stage.queue_url))["Records"])
    _processor(stage).process(first)

    class RefusingDlq(DeadLetterQueue):
        def park(self, record: SqsRecord, error_type: ErrorType) -> str:
            raise EndpointConnectionError(endpoint_url="https://sqs")

    processor = _processor(stage)
    processor._dead_letters = RefusingDlq(stage.sqs, stage.dlq_url)
    with pytest.raises(EndpointConnectionError):  # a batch item failure: SQS delivers it again
        processor.process(second)


def test_records_a_batch_leaves_inflight_carry_a_ttl(stage: Any) -> None:
    key = send(stage, order(5))
    [message] = stage.receive_all(stage.queue_url)
    before = time.time()
    stage.set_failure_mode("slow_downstream")

    def killed(seconds: float) -> None:
        raise Killed

    processor = _processor(stage, sleep=killed)
    with pytest.raises(Killed):
        processor.process(SqsRecord(sqs_event([message])["Records"][0]))
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
    CACHED_DEPENDENCIES.cache_clear()
    deps = replace(handler.dependencies(), failure_modes=failure_mode_reader_from_env(ssm))
    monkeypatch.setattr(handler, "dependencies", lambda: deps)

    response = handler.lambda_handler(sqs_event(stage.receive_all(stage.queue_url)), lambda_context)

    assert response["batchItemFailures"] == []
    assert ssm.reads == 1  # FAILURE_MODE_CACHE_SECONDS is 0 here: every read is a real one


def test_the_partial_batch_response_names_exactly_the_records_that_raised() -> None:
    """AWS Lambda Developer Guide, "Handling errors for an SQS event source in Lambda": each failed
    record's messageId as itemIdentifier, in batchItemFailures; an empty list is a full success."""
    records = [{"messageId": f"m-{n}", "body": str(n)} for n in range(4)]
    seen: list[str] = []

    def fail_odd(record: SqsRecord) -> None:
        seen.append(record.message_id)
        if int(record.body) % 2:
            raise ValueError(record.body)

    assert handler.partial_batch_response(records, fail_odd) == {
        "batchItemFailures": [{"itemIdentifier": "m-1"}, {"itemIdentifier": "m-3"}]
    }
    assert seen == ["m-0", "m-1", "m-2", "m-3"]
    assert handler.partial_batch_response(records, lambda record: None) == {"batchItemFailures": []}

    def fail_all(record: SqsRecord) -> None:
        raise RuntimeError(record.message_id)

    assert handler.partial_batch_response(records, fail_all) == {
        "batchItemFailures": [{"itemIdentifier": f"m-{n}"} for n in range(4)]
    }
