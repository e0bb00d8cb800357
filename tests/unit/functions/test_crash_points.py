"""Issue 11, item 6: kill the worker and the relay at each crash point; every SUCCEEDED key still
gets its success event, at least once, under one distinct event id.

The pieces run as Lambda runs them: the worker over SQS batches of 10 (a killed invocation's
messages come back, a finished one's successes are deleted), the relay over the state table's
stream through its mapping's filter and checkpoint (tests/unit/functions/stream_relay.py). A kill is
a BaseException raised at the crash point: nothing after it runs, no handler catches it.

`pytest tests/unit/functions/test_crash_points.py -s` prints one row per crash point.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from functions.common.events import EventPublisher
from functions.common.names import DetailType, RecordStatus
from functions.common.state_table import StateTable
from functions.relay import handler as relay_handler
from functions.relay.relay import Relay
from functions.worker import handler as worker
from tests.unit.functions.orders import order, send
from tests.unit.functions.sqs_events import sqs_event
from tests.unit.functions.stream_relay import Killed, StreamMapping

ORDERS = 15  # two worker batches, two PutEvents chunks
SQS_BATCH_SIZE = 10
CACHED_WORKER_DEPENDENCIES = worker.dependencies
CACHED_RELAY = relay_handler.relay


class KillingState(StateTable):
    """The worker's table, killing the invocation once at the nth succeed(), before or after its write."""

    def __init__(self, *args: Any, at_call: int, after_write: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._at_call = at_call
        self._after_write = after_write
        self._calls = 0
        self.killed_key: str | None = None

    def succeed(self, idempotency_key: str, **kwargs: Any) -> bool:
        self._calls += 1
        if self._calls != self._at_call:
            return super().succeed(idempotency_key, **kwargs)
        self.killed_key = idempotency_key
        if self._after_write:
            super().succeed(idempotency_key, **kwargs)
        raise Killed


class FaultyEvents:
    """The moto events client with one fault on its nth PutEvents call (then healthy)."""

    def __init__(self, events: Any, *, at_call: int, fault: str) -> None:
        self._events = events
        self._at_call = at_call
        self._fault = fault
        self.calls = 0

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls += 1
        # "refuse" lasts two calls: the refused call and the publisher's one retry of its refusals.
        last = self._at_call + (1 if self._fault == "refuse" else 0)
        if not self._at_call <= self.calls <= last:
            return dict(self._events.put_events(Entries=Entries))
        if self._fault == "kill":
            raise Killed
        if self._fault == "deny":
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "denied"}}, "PutEvents")
        # "refuse": EventBridge takes the first half of the entries and refuses the rest.
        half = len(Entries) // 2
        accepted = self._events.put_events(Entries=Entries[:half])["Entries"] if half else []
        refused = [{"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}] * (
            len(Entries) - half
        )
        return {"FailedEntryCount": len(refused), "Entries": [*accepted, *refused]}


@dataclass(frozen=True)
class CrashPoint:
    name: str
    worker_kill: tuple[int, bool] | None = None  # (succeed() call, after its write)
    events_fault: tuple[int, str] | None = None  # (PutEvents call, fault)
    kill_relay_after_return: bool = False


CRASH_POINTS = [
    CrashPoint("no crash"),
    CrashPoint("worker killed after begin (record INFLIGHT)", worker_kill=(3, False)),
    CrashPoint("worker killed after finish (SUCCEEDED, message not deleted)", worker_kill=(3, True)),
    CrashPoint("relay killed mid PutEvents (first chunk sent)", events_fault=(2, "kill")),
    CrashPoint("relay killed after PutEvents, before its checkpoint", kill_relay_after_return=True),
    CrashPoint("relay: EventBridge refuses entries (FailedEntryCount)", events_fault=(1, "refuse")),
    CrashPoint("relay: PutEvents call fails outright", events_fault=(1, "deny")),
]


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    CACHED_WORKER_DEPENDENCIES.cache_clear()
    CACHED_RELAY.cache_clear()
    yield
    CACHED_WORKER_DEPENDENCIES.cache_clear()
    CACHED_RELAY.cache_clear()


def expire_lease(stage: Any, key: str) -> None:
    """What the visibility timeout guarantees by the time a killed batch's message comes back: the
    attempt's lease (the invocation's deadline) is over (visibility >= 6 x the function timeout)."""
    stage.dynamodb.update_item(
        TableName=stage.table_name,
        Key={"idempotencyKey": {"S": key}},
        UpdateExpression="SET inflightUntil = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
    )


def run_worker_mapping(stage: Any, context: Any, state: StateTable) -> bool:
    """One pass of the SQS mapping over the visible messages, in batches of 10; False if one was killed."""
    messages = stage.receive_all(stage.queue_url)
    survived = True
    for start in range(0, len(messages), SQS_BATCH_SIZE):
        batch = messages[start : start + SQS_BATCH_SIZE]
        try:
            response = worker.lambda_handler(sqs_event(batch), context)
        except Killed:
            survived = False
            failed = {message["MessageId"] for message in batch}
        else:
            failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
        for message in batch:
            if message["MessageId"] in failed:  # back after the visibility timeout, without the wait
                stage.sqs.change_message_visibility(
                    QueueUrl=stage.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                stage.sqs.delete_message(QueueUrl=stage.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return survived


def relay_function(
    relay: Relay, *, kill_once_after_return: bool
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    killed = not kill_once_after_return

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        nonlocal killed
        response = relay.publish(event["Records"])
        if not killed:
            killed = True
            raise Killed
        return response

    return invoke


@pytest.mark.parametrize("point", CRASH_POINTS, ids=[point.name for point in CRASH_POINTS])
def test_every_succeeded_key_gets_its_event_at_least_once_with_one_event_id(
    point: CrashPoint, stage: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [send(stage, order(n)) for n in range(ORDERS)]
    state: StateTable = StateTable(stage.dynamodb, stage.table_name, ttl_days=1)
    if point.worker_kill:
        at_call, after_write = point.worker_kill
        state = KillingState(
            stage.dynamodb, stage.table_name, ttl_days=1, at_call=at_call, after_write=after_write
        )
    deps = replace(CACHED_WORKER_DEPENDENCIES(), state=state)
    monkeypatch.setattr(worker, "dependencies", lambda: deps)
    events_client: Any = stage.events
    if point.events_fault:
        events_client = FaultyEvents(stage.events, at_call=point.events_fault[0], fault=point.events_fault[1])
    relay = Relay(EventPublisher(events_client, stage.bus_name))
    invoke_relay = relay_function(relay, kill_once_after_return=point.kill_relay_after_return)
    mapping = StreamMapping(stage.table_name)

    for _ in range(5):  # the SQS mapping and the stream mapping, each as Lambda runs them
        killed = not run_worker_mapping(stage, lambda_context, state)
        killed_key = state.killed_key if isinstance(state, KillingState) else None
        if killed and killed_key and stage.state(killed_key)["status"] == RecordStatus.INFLIGHT.value:
            expire_lease(stage, killed_key)
        mapping.drain(invoke_relay)
        if stage.depth(stage.queue_url) == 0:
            break

    ids_by_key: dict[str, set[str]] = defaultdict(set)
    deliveries = 0
    for event in stage.captured_events():
        assert event["detail-type"] == DetailType.SUCCESS.value
        ids_by_key[event["detail"]["idempotencyKey"]].add(event["detail"]["eventId"])
        deliveries += 1
    succeeded = [key for key in keys if stage.state(key)["status"] == RecordStatus.SUCCEEDED.value]
    print(
        f"ROW | {point.name} | {len(succeeded)}/{ORDERS} SUCCEEDED | {len(ids_by_key)} keys with an event | "
        f"{max(len(ids) for ids in ids_by_key.values())} distinct event id per key | "
        f"{deliveries} deliveries ({deliveries - len(ids_by_key)} repeated) | "
        f"{len(mapping.invocations)} relay invocations"
    )
    assert succeeded == keys
    assert sorted(ids_by_key) == sorted(keys)
    assert all(len(ids) == 1 for ids in ids_by_key.values())
    assert stage.depth(stage.queue_url) == 0
    assert stage.depth(stage.dlq_url) == 0
