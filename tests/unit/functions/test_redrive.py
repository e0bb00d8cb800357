"""The redrive function: preview, filtered/jittered/paced moves, quarantine, cancel, status, bad input."""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import replace
from typing import Any

import pytest

from functions.common.names import (
    NO_ERROR_TYPE,
    REDRIVE_JOB_EVENT_KEY,
    ErrorType,
    MessageAttribute,
    RecordStatus,
)
from functions.common.state_table import StateTable
from functions.redrive import handler
from functions.redrive.job_store import JobNotFound, JobStatus, JobStore, RedriveJob
from functions.redrive.jobs import JobConflict, JobHandoverFailed, JobStartFailed, RedriveJobs
from functions.redrive.mover import RECEIVE_VISIBILITY_SECONDS, DlqMover, Pacer
from functions.redrive.params import RedriveParams, parse_params
from tests.unit.functions.http_events import JSON_HEADERS, http_event


def park(
    stage: Any, n: int, *, error_type: ErrorType = ErrorType.SCHEMA_VALIDATION, redrive_count: int = 0
) -> str:
    """A message in the DLQ as the worker leaves it: key attribute plus a FAILED state record."""
    key = f"key-{error_type.value}-{n}-{redrive_count}"
    attributes = {MessageAttribute.IDEMPOTENCY_KEY.value: {"DataType": "String", "StringValue": key}}
    if redrive_count:
        attributes[MessageAttribute.REDRIVE_COUNT.value] = {
            "DataType": "Number",
            "StringValue": str(redrive_count),
        }
    stage.sqs.send_message(
        QueueUrl=stage.dlq_url,
        MessageBody=json.dumps({"orderId": key, "amount": n}),
        MessageAttributes=attributes,
    )
    stage.dynamodb.put_item(
        TableName=stage.table_name,
        Item={
            "idempotencyKey": {"S": key},
            "status": {"S": RecordStatus.FAILED.value},
            "errorType": {"S": error_type.value},
            "attempts": {"N": "5"},
        },
    )
    return key


class RecordingSqs:
    """The moto client, with send_message_batch calls recorded and optionally some entries refused."""

    def __init__(self, sqs: Any, refuse_bodies: set[str] | None = None, fail_calls: bool = False) -> None:
        self._sqs = sqs
        self.sent_entries: list[dict[str, Any]] = []
        self._refuse = refuse_bodies or set()
        self._fail_calls = fail_calls

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        if self._fail_calls:
            from botocore.exceptions import EndpointConnectionError

            raise EndpointConnectionError(endpoint_url=QueueUrl)
        kept = [entry for entry in Entries if entry["MessageBody"] not in self._refuse]
        refused = [entry for entry in Entries if entry["MessageBody"] in self._refuse]
        response = (
            self._sqs.send_message_batch(QueueUrl=QueueUrl, Entries=kept) if kept else {"Successful": []}
        )
        self.sent_entries.extend(kept)
        response["Failed"] = response.get("Failed", []) + [
            {"Id": entry["Id"], "Code": "InternalError", "SenderFault": False} for entry in refused
        ]
        return response


def mover(
    stage: Any, *, sqs: Any = None, max_redrives: int = 3, clock: Any = time.time, seed: int = 7
) -> DlqMover:
    return DlqMover(
        sqs=sqs or stage.sqs,
        state=StateTable(stage.dynamodb, stage.table_name, ttl_days=3),
        dlq_url=stage.dlq_url,
        queue_url=stage.queue_url,
        quarantine_url=stage.quarantine_url,
        max_redrives_per_message=max_redrives,
        rng=random.Random(seed),
        clock=clock,
        wait_seconds=0,
    )


class Invocation:
    """One invocation's time on a fake clock: pacing sleeps and batches advance it."""

    def __init__(self, seconds: float, *, start: float = 0.0) -> None:
        self.now = start
        self.deadline = start + seconds

    def remaining_ms(self) -> int:
        return int((self.deadline - self.now) * 1000)

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def clock(self) -> float:
        return self.now


def slow_batches(dlq_mover: DlqMover, invocation: Invocation, seconds: float) -> None:
    """Every batch the mover moves takes `seconds` of the invocation's time."""
    original_move = dlq_mover.move

    def move(*args: Any, **kwargs: Any) -> Any:
        invocation.now += seconds
        return original_move(*args, **kwargs)

    dlq_mover.move = move  # type: ignore[method-assign]


class Jobs:
    """RedriveJobs over moto with the asynchronous start captured instead of invoking Lambda."""

    def __init__(
        self,
        stage: Any,
        dlq_mover: DlqMover,
        rate: float = 1000.0,
        *,
        invocation: Invocation | None = None,
        start_async: Any = None,
        clock: Any = time.time,
    ) -> None:
        self.started: list[str] = []
        self.store = JobStore(stage.dynamodb, stage.jobs_table_name, ttl_days=3)
        self.naps: list[float] = []

        def sleep(seconds: float) -> None:
            self.naps.append(seconds)
            if invocation is not None:
                invocation.sleep(seconds)

        self.jobs = RedriveJobs(
            store=self.store,
            mover=dlq_mover,
            start_async=start_async or self.started.append,
            pacer_factory=lambda: Pacer(
                rate, sleep=sleep, clock=invocation.clock if invocation else time.monotonic
            ),
            clock=clock,
        )

    def run(self, params: RedriveParams, remaining_ms: int = 600_000) -> RedriveJob:
        job = self.jobs.start(params)
        assert self.started[-1] == job.job_id
        return self.jobs.run(job.job_id, lambda: remaining_ms)


def attribute(message: dict[str, Any], name: MessageAttribute) -> str | None:
    value = message.get("MessageAttributes", {}).get(name.value)
    return value["StringValue"] if value else None


# --- preview -------------------------------------------------------------------------------------------
@pytest.fixture
def api(stage: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    handler.dependencies.cache_clear()
    invocations: list[dict[str, Any]] = []

    class FakeLambda:
        def invoke(self, **kwargs: Any) -> dict[str, Any]:
            invocations.append(kwargs)
            return {"StatusCode": 202}

    deps = replace(handler.dependencies(), lambda_client=FakeLambda())
    deps.mover.dlq._wait_seconds = 0
    monkeypatch.setattr(handler, "dependencies", lambda: deps)

    def call(method: str, path: str, *, query: dict[str, str] | None = None, body: Any = None) -> Any:
        raw = body if isinstance(body, str) or body is None else json.dumps(body)
        event = http_event(method, path, query=query, body=raw, headers=JSON_HEADERS)
        response = handler.lambda_handler(event, lambda_context)
        return response["statusCode"], json.loads(response["body"])

    call.invocations = invocations  # type: ignore[attr-defined]
    return call


def test_preview_samples_with_error_type_and_deletes_nothing(api: Any, stage: Any) -> None:
    keys = {park(stage, n) for n in range(4)} | {
        park(stage, 9, error_type=ErrorType.TRANSIENT, redrive_count=3)
    }

    status, body = api("GET", "/redrive/preview", query={"maxMessages": "20"})

    assert status == 200
    assert {m["idempotencyKey"] for m in body["messages"]} == keys
    by_key = {m["idempotencyKey"]: m for m in body["messages"]}
    assert by_key["key-TransientDownstreamError-9-3"]["errorType"] == ErrorType.TRANSIENT.value
    assert by_key["key-TransientDownstreamError-9-3"]["wouldQuarantine"] is True
    assert by_key["key-SchemaValidationError-0-0"]["wouldQuarantine"] is False
    assert all(m["receiveCount"] >= 1 and m["ageSeconds"] >= 0 for m in body["messages"])
    # Nothing deleted, everything visible again at once.
    assert len(stage.receive_all(stage.dlq_url)) == 5


def test_preview_filters_by_error_type_and_age(stage: Any) -> None:
    park(stage, 1)
    park(stage, 2, error_type=ErrorType.TRANSIENT)
    future = mover(stage, clock=lambda: time.time() + 120)

    by_type = future.preview(
        RedriveParams(max_messages=10, filter_error_types=frozenset({ErrorType.TRANSIENT.value}))
    )
    assert [m["idempotencyKey"] for m in by_type["messages"]] == ["key-TransientDownstreamError-2-0"]
    assert by_type["scanned"] == 2
    assert future.preview(RedriveParams(max_messages=10, min_age_seconds=60))["matched"] == 2
    assert mover(stage).preview(RedriveParams(max_messages=10, min_age_seconds=60))["matched"] == 0
    assert len(stage.receive_all(stage.dlq_url)) == 2


def test_preview_and_move_take_the_same_routing_decision(stage: Any) -> None:
    wanted = {park(stage, n, error_type=ErrorType.TRANSIENT) for n in range(3)}
    condemned = park(stage, 7, error_type=ErrorType.TRANSIENT, redrive_count=3)
    for n in range(3):
        park(stage, n)
    params = RedriveParams(max_messages=100, filter_error_types=frozenset({ErrorType.TRANSIENT.value}))
    dlq_mover = mover(stage, max_redrives=3)

    preview = dlq_mover.preview(params)
    job = Jobs(stage, dlq_mover).run(params)

    routes = {m["idempotencyKey"]: m["route"] for m in preview["messages"]}
    assert routes == {**dict.fromkeys(wanted, "main"), condemned: "quarantine"}
    assert {
        attribute(m, MessageAttribute.IDEMPOTENCY_KEY) for m in stage.receive_all(stage.queue_url)
    } == wanted
    assert [
        attribute(m, MessageAttribute.IDEMPOTENCY_KEY) for m in stage.receive_all(stage.quarantine_url)
    ] == [condemned]
    assert (job.counters.moved, job.counters.quarantined, job.counters.skipped) == (3, 1, 3)


# --- moving --------------------------------------------------------------------------------------------
def test_start_moves_messages_with_redrive_count_and_jitter_bounds(stage: Any) -> None:
    keys = {park(stage, n) for n in range(15)}
    sqs = RecordingSqs(stage.sqs)
    jobs = Jobs(stage, mover(stage, sqs=sqs))

    job = jobs.run(RedriveParams(max_messages=100, per_message_delay_jitter=4))

    assert job.status is JobStatus.SUCCEEDED
    assert job.counters.as_dict() == {
        "received": 15,
        "moved": 15,
        "skipped": 0,
        "quarantined": 0,
        "failed": 0,
    }
    delays = [entry["DelaySeconds"] for entry in sqs.sent_entries]
    assert all(0 <= delay <= 4 for delay in delays)
    assert len(set(delays)) > 1
    assert stage.depth(stage.dlq_url) == 0
    moved = stage.receive_all(stage.queue_url)
    # Messages delayed by up to 4 s may not be visible yet; the ones that are carry the new count.
    for message in moved:
        assert attribute(message, MessageAttribute.REDRIVE_COUNT) == "1"
        assert attribute(message, MessageAttribute.REDRIVE_JOB_ID) == job.job_id
        assert attribute(message, MessageAttribute.IDEMPOTENCY_KEY) in keys
    assert stage.depth(stage.queue_url) == 15
    assert {stage.state(key)["redriveCount"] for key in keys} == {1}


def test_zero_jitter_sends_without_delay(stage: Any) -> None:
    park(stage, 1)
    sqs = RecordingSqs(stage.sqs)
    Jobs(stage, mover(stage, sqs=sqs)).run(RedriveParams(max_messages=5))
    assert [entry["DelaySeconds"] for entry in sqs.sent_entries] == [0]


def test_max_messages_bounds_the_move(stage: Any) -> None:
    for n in range(12):
        park(stage, n)
    job = Jobs(stage, mover(stage)).run(RedriveParams(max_messages=5))
    assert job.counters.moved == 5
    assert stage.depth(stage.dlq_url) == 7
    assert stage.depth(stage.queue_url) == 5


def test_error_type_filter_moves_only_matching_and_releases_the_rest(stage: Any) -> None:
    wanted = {park(stage, n, error_type=ErrorType.TRANSIENT) for n in range(3)}
    for n in range(4):
        park(stage, n)

    job = Jobs(stage, mover(stage)).run(
        RedriveParams(max_messages=100, filter_error_types=frozenset({ErrorType.TRANSIENT.value}))
    )

    assert job.counters.moved == 3
    assert job.counters.skipped == 4
    assert {
        attribute(m, MessageAttribute.IDEMPOTENCY_KEY) for m in stage.receive_all(stage.queue_url)
    } == wanted
    left = stage.receive_all(stage.dlq_url)
    assert len(left) == 4  # visible again at once, not hidden for the visibility timeout


def test_failed_send_leaves_the_message_in_the_dlq(stage: Any) -> None:
    park(stage, 1)
    refused_key = park(stage, 2)
    refused_body = json.dumps({"orderId": refused_key, "amount": 2})
    jobs = Jobs(stage, mover(stage, sqs=RecordingSqs(stage.sqs, refuse_bodies={refused_body})))

    job = jobs.run(RedriveParams(max_messages=10))

    assert (job.counters.moved, job.counters.failed) == (1, 1)
    [left] = stage.receive_all(stage.dlq_url)
    assert left["Body"] == refused_body
    assert "redriveCount" not in stage.state(refused_key)


def test_send_call_error_leaves_everything_in_the_dlq(stage: Any) -> None:
    for n in range(3):
        park(stage, n)
    job = Jobs(stage, mover(stage, sqs=RecordingSqs(stage.sqs, fail_calls=True))).run(
        RedriveParams(max_messages=10)
    )
    assert job.counters.failed == 3
    assert job.status is JobStatus.SUCCEEDED
    assert len(stage.receive_all(stage.dlq_url)) == 3
    assert stage.depth(stage.queue_url) == 0


def test_message_at_the_redrive_limit_is_quarantined_not_requeued(stage: Any) -> None:
    fresh = park(stage, 1, redrive_count=2)
    condemned = park(stage, 2, redrive_count=3)

    job = Jobs(stage, mover(stage, max_redrives=3)).run(RedriveParams(max_messages=10))

    assert (job.counters.moved, job.counters.quarantined) == (1, 1)
    [requeued] = stage.receive_all(stage.queue_url)
    assert attribute(requeued, MessageAttribute.IDEMPOTENCY_KEY) == fresh
    assert attribute(requeued, MessageAttribute.REDRIVE_COUNT) == "3"
    [parked] = stage.receive_all(stage.quarantine_url)
    assert attribute(parked, MessageAttribute.IDEMPOTENCY_KEY) == condemned
    assert stage.state(condemned)["status"] == RecordStatus.QUARANTINED.value
    assert stage.state(fresh)["status"] == RecordStatus.FAILED.value
    assert stage.depth(stage.dlq_url) == 0


def test_quarantine_never_reopens_a_succeeded_key(stage: Any) -> None:
    key = park(stage, 1, redrive_count=3)
    stage.dynamodb.update_item(
        TableName=stage.table_name,
        Key={"idempotencyKey": {"S": key}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": RecordStatus.SUCCEEDED.value}},
    )
    job = Jobs(stage, mover(stage, max_redrives=3)).run(RedriveParams(max_messages=10))
    assert job.counters.quarantined == 1
    assert stage.state(key)["status"] == RecordStatus.SUCCEEDED.value


def test_a_poison_message_cannot_loop_forever(stage: Any) -> None:
    """DLQ -> main -> (worker fails, back to DLQ) -> ... ends in quarantine after the limit."""
    key = park(stage, 1)
    jobs = Jobs(stage, mover(stage, max_redrives=2))
    for _ in range(5):
        jobs.run(RedriveParams(max_messages=10))
        for message in stage.receive_all(stage.queue_url):
            # What maxReceiveCount does to a poison message: back into the DLQ, attributes intact.
            stage.sqs.send_message(
                QueueUrl=stage.dlq_url,
                MessageBody=message["Body"],
                MessageAttributes={
                    name: {"DataType": value["DataType"], "StringValue": value["StringValue"]}
                    for name, value in message["MessageAttributes"].items()
                },
            )
            stage.sqs.delete_message(QueueUrl=stage.queue_url, ReceiptHandle=message["ReceiptHandle"])
    assert stage.depth(stage.dlq_url) == 0
    assert stage.depth(stage.queue_url) == 0
    [parked] = stage.receive_all(stage.quarantine_url)
    assert attribute(parked, MessageAttribute.REDRIVE_COUNT) == "2"
    assert stage.state(key)["status"] == RecordStatus.QUARANTINED.value


# --- pacing, cancel, hand-over ---------------------------------------------------------------------------
def test_pacer_enforces_the_rate() -> None:
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    pacer = Pacer(4, clock=lambda: clock[0], sleep=sleep)
    assert pacer.batch_size == 4
    for _ in range(10):
        pacer.admit(4)
    # 40 messages at 4/s: the last batch may start once 36 have had their 9 seconds.
    assert clock[0] == pytest.approx(9.0)
    assert Pacer(0.5).batch_size == 1
    assert Pacer(500).batch_size == 10


def test_job_sends_in_batches_no_larger_than_the_rate(stage: Any) -> None:
    for n in range(9):
        park(stage, n)
    sqs = RecordingSqs(stage.sqs)
    jobs = Jobs(stage, mover(stage, sqs=sqs), rate=3)
    job = jobs.run(RedriveParams(max_messages=100))
    assert job.counters.moved == 9
    assert len(jobs.naps) >= 2
    assert sum(jobs.naps) > 1.0


def test_cancel_stops_a_running_job_before_its_next_batch(stage: Any) -> None:
    for n in range(25):
        park(stage, n)
    dlq_mover = mover(stage)
    jobs = Jobs(stage, dlq_mover)
    original_move = dlq_mover.move
    job_ids: list[str] = []

    def move_then_cancel(*args: Any, **kwargs: Any) -> Any:
        outcome = original_move(*args, **kwargs)
        jobs.jobs.cancel(kwargs["job_id"])
        job_ids.append(kwargs["job_id"])
        return outcome

    dlq_mover.move = move_then_cancel  # type: ignore[method-assign]
    job = jobs.run(RedriveParams(max_messages=100))

    assert job.status is JobStatus.CANCELLED
    assert job.counters.moved == 10
    assert len(job_ids) == 1
    assert stage.depth(stage.dlq_url) == 15


def test_cancelled_before_start_moves_nothing(stage: Any) -> None:
    park(stage, 1)
    jobs = Jobs(stage, mover(stage))
    job = jobs.jobs.start(RedriveParams(max_messages=10))
    # No runner holds it yet: cancelled at once, and its invocation finds nothing to run.
    assert jobs.jobs.cancel(job.job_id).status is JobStatus.CANCELLED
    assert jobs.jobs.run(job.job_id, lambda: 600_000).status is JobStatus.CANCELLED
    assert stage.depth(stage.dlq_url) == 1


def test_job_near_its_timeout_hands_over_to_a_new_invocation(stage: Any) -> None:
    for n in range(25):
        park(stage, n)
    invocation = Invocation(60)
    dlq_mover = mover(stage)
    slow_batches(dlq_mover, invocation, 45)  # the deadline is near after one batch
    jobs = Jobs(stage, dlq_mover, invocation=invocation)
    job = jobs.jobs.start(RedriveParams(max_messages=100))

    handed = jobs.jobs.run(job.job_id, invocation.remaining_ms)

    assert (handed.status, handed.runner, handed.counters.moved) == (JobStatus.RUNNING, None, 10)
    assert jobs.started == [job.job_id, job.job_id]
    finished = jobs.jobs.run(job.job_id, lambda: 600_000)
    assert (finished.status, finished.counters.moved) == (JobStatus.SUCCEEDED, 25)


def test_a_short_timeout_still_moves_a_batch_per_invocation(stage: Any) -> None:
    for n in range(12):
        park(stage, n)
    # A 3-second function that is nearly out of time after its first batch: it still moved one
    # batch before handing over (no endless chain of empty hand-overs).
    invocation = Invocation(3)
    dlq_mover = mover(stage)
    slow_batches(dlq_mover, invocation, 2.9)
    jobs = Jobs(stage, dlq_mover, invocation=invocation)
    job = jobs.jobs.start(RedriveParams(max_messages=100))
    handed = jobs.jobs.run(job.job_id, invocation.remaining_ms)
    assert (handed.status, handed.counters.moved) == (JobStatus.RUNNING, 10)


# --- one runner per job (issue 11, item 5) -----------------------------------------------------------
def test_a_second_invocation_of_a_running_job_moves_nothing(stage: Any) -> None:
    """A duplicate asynchronous delivery (or a retried Invoke) arrives while the first runner works."""
    for n in range(30):
        park(stage, n)
    dlq_mover = mover(stage)
    jobs = Jobs(stage, dlq_mover)
    job = jobs.jobs.start(RedriveParams(max_messages=15))
    original_move = dlq_mover.move
    second: list[Any] = []

    def move_while_a_duplicate_arrives(*args: Any, **kwargs: Any) -> Any:
        if not second:
            second.append(jobs.jobs.run(job.job_id, lambda: 600_000))
        return original_move(*args, **kwargs)

    dlq_mover.move = move_while_a_duplicate_arrives  # type: ignore[method-assign]
    first = jobs.jobs.run(job.job_id, lambda: 600_000)

    [duplicate] = second
    assert duplicate.status is JobStatus.RUNNING
    assert duplicate.runner is not None
    assert (first.status, first.counters.moved) == (JobStatus.SUCCEEDED, 15)
    assert stage.depth(stage.queue_url) == 15
    assert stage.depth(stage.dlq_url) == 15


class AtomicCalls:
    """A moto client whose calls run one at a time: DynamoDB applies each conditional write atomically
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/WorkingWithItems.html
    #WorkingWithItems.ConditionalUpdate); moto, called from several threads, does not."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._client, name)

        def atomic(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return call(*args, **kwargs)

        return atomic


def test_concurrent_runners_never_move_more_than_asked(stage: Any) -> None:
    for n in range(40):
        park(stage, n)
    dlq_mover = mover(stage)
    jobs = Jobs(stage, dlq_mover, rate=1000)
    jobs.store = JobStore(AtomicCalls(stage.dynamodb), stage.jobs_table_name, ttl_days=3)
    jobs.jobs = RedriveJobs(
        store=jobs.store, mover=dlq_mover, start_async=jobs.started.append, pacer_factory=lambda: Pacer(1000)
    )
    job = jobs.jobs.start(RedriveParams(max_messages=25))
    gate = threading.Barrier(4, timeout=10)

    def runner() -> None:
        gate.wait()
        jobs.jobs.run(job.job_id, lambda: 600_000)

    threads = [threading.Thread(target=runner) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    final = jobs.store.get(job.job_id)
    assert final.status is JobStatus.SUCCEEDED
    assert stage.depth(stage.queue_url) == final.counters.moved == final.claimed == 25
    assert stage.depth(stage.dlq_url) == 15


class Killed(BaseException):
    """The runtime ending an invocation: no handler code runs after it."""


def test_a_runner_killed_after_sending_leaves_its_successor_less_budget_never_more(stage: Any) -> None:
    for n in range(25):
        park(stage, n)
    dlq_mover = mover(stage)
    original_move = dlq_mover.move
    kills: list[int] = []

    def move_then_die(*args: Any, **kwargs: Any) -> Any:
        outcome = original_move(*args, **kwargs)
        if not kills:
            kills.append(outcome.counters.moved)
            raise Killed  # after the sends, before the runner recorded them
        return outcome

    dlq_mover.move = move_then_die  # type: ignore[method-assign]
    later = [time.time()]
    jobs = Jobs(stage, dlq_mover, clock=lambda: later[0])
    job = jobs.jobs.start(RedriveParams(max_messages=10))
    with pytest.raises(Killed):
        jobs.jobs.run(job.job_id, lambda: 60_000)
    assert kills == [10]

    # While the dead runner's lease lasts nobody takes the job; after it, its successor does.
    assert jobs.jobs.run(job.job_id, lambda: 60_000).status is JobStatus.RUNNING
    later[0] += 120
    finished = jobs.jobs.run(job.job_id, lambda: 60_000)

    assert finished.status is JobStatus.SUCCEEDED
    assert finished.claimed == 10
    assert stage.depth(stage.queue_url) == 10  # maxMessages, not 20
    assert stage.depth(stage.dlq_url) == 15


def test_a_hand_over_that_fails_after_starting_its_successor_never_marks_the_job_failed(stage: Any) -> None:
    for n in range(25):
        park(stage, n)
    invocation = Invocation(60)
    dlq_mover = mover(stage)
    slow_batches(dlq_mover, invocation, 45)
    successors: list[str] = []

    def start_then_fail(job_id: str) -> None:
        # Lambda queued the successor, then the answer to Invoke was lost (a timeout, a reset).
        successors.append(job_id)
        raise ConnectionError("connection reset after the invocation was accepted")

    jobs = Jobs(stage, dlq_mover, invocation=invocation, start_async=start_then_fail)
    job = jobs.store.create(RedriveParams(max_messages=100))

    with pytest.raises(JobHandoverFailed):
        jobs.jobs.run(job.job_id, invocation.remaining_ms)

    stranded = jobs.store.get(job.job_id)
    assert (stranded.status, stranded.runner, stranded.counters.moved) == (JobStatus.RUNNING, None, 10)
    assert successors == [job.job_id] * 2  # retried: a second start is harmless, the lease decides
    finished = jobs.jobs.run(job.job_id, lambda: 600_000)  # the successor that did start
    assert (finished.status, finished.counters.moved) == (JobStatus.SUCCEEDED, 25)
    assert jobs.jobs.run(job.job_id, lambda: 600_000).status is JobStatus.SUCCEEDED  # the second one


@pytest.mark.parametrize(
    "state", ["pending", "running, runner alive", "running, runner dead", "requested, runner dead"]
)
def test_cancel_works_in_every_state(stage: Any, state: str) -> None:
    for n in range(5):
        park(stage, n)
    now = [time.time()]
    dlq_mover = mover(stage)
    jobs = Jobs(stage, dlq_mover, clock=lambda: now[0])
    job = jobs.store.create(RedriveParams(max_messages=100))
    if state != "pending":
        acquired = jobs.store.acquire(job.job_id, runner="r-1", lease_until=now[0] + 60, now=now[0])
        assert isinstance(acquired, RedriveJob)
    if state == "requested, runner dead":
        assert jobs.jobs.cancel(job.job_id).status is JobStatus.CANCEL_REQUESTED
    if "dead" in state:
        now[0] += 120  # the runner's lease ran out: its invocation is gone

    cancelled = jobs.jobs.cancel(job.job_id)

    expected = JobStatus.CANCEL_REQUESTED if state == "running, runner alive" else JobStatus.CANCELLED
    assert cancelled.status is expected
    # A late invocation of the job moves nothing: cancelled, or left to the live runner to honour.
    assert jobs.jobs.run(job.job_id, lambda: 600_000).status is expected
    assert stage.depth(stage.dlq_url) == 5


def test_cancel_of_a_finished_job_is_a_conflict(stage: Any) -> None:
    park(stage, 1)
    jobs = Jobs(stage, mover(stage))
    job = jobs.run(RedriveParams(max_messages=10))
    with pytest.raises(JobConflict):
        jobs.jobs.cancel(job.job_id)
    with pytest.raises(JobNotFound):
        jobs.jobs.cancel("no-such-job")


# --- pacing (issue 11, item 8) ---------------------------------------------------------------------------
def test_the_pacer_never_holds_a_received_message_past_its_visibility_timeout(stage: Any) -> None:
    for n in range(3):
        park(stage, n)
    invocation = Invocation(900)
    held: list[float] = []

    class TimedSqs(RecordingSqs):
        received_at: dict[str, float] = {}

        def receive_message(self, **kwargs: Any) -> dict[str, Any]:
            response = stage.sqs.receive_message(**kwargs)
            for message in response.get("Messages", []):
                self.received_at[message["ReceiptHandle"]] = invocation.now
            return response

        def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            held.extend(invocation.now - self.received_at[entry["ReceiptHandle"]] for entry in Entries)
            return stage.sqs.delete_message_batch(QueueUrl=QueueUrl, Entries=Entries)

    # 0.01 messages per second: one message every 100 seconds, longer than a receive's visibility.
    jobs = Jobs(stage, mover(stage, sqs=TimedSqs(stage.sqs)), rate=0.01, invocation=invocation)
    job = jobs.jobs.start(RedriveParams(max_messages=3))
    finished = jobs.jobs.run(job.job_id, invocation.remaining_ms)

    assert finished.status is JobStatus.SUCCEEDED
    assert len(held) == 3
    assert max(held) < RECEIVE_VISIBILITY_SECONDS
    assert sum(jobs.naps) == pytest.approx(200)


def test_the_hand_over_margin_counts_the_pacing_sleep(stage: Any) -> None:
    for n in range(5):
        park(stage, n)
    invocation = Invocation(150)  # margin: min(20 s, a third) = 20 s
    jobs = Jobs(stage, mover(stage), rate=0.01, invocation=invocation)
    job = jobs.jobs.start(RedriveParams(max_messages=5))

    handed = jobs.jobs.run(job.job_id, invocation.remaining_ms)

    # Batch one at 0 s, batch two after a 100 s wait; a third 100 s wait would end at 200 s, past
    # the deadline: the job hands over instead of sleeping through its invocation's end.
    assert (handed.status, handed.counters.moved) == (JobStatus.RUNNING, 2)
    assert invocation.now <= invocation.deadline - 20
    assert jobs.started == [job.job_id, job.job_id]


# --- filtering what a killed batch left behind (issue 11, item 8) -------------------------------------
def park_unrecorded(stage: Any, n: int, *, status: RecordStatus | None = None) -> str:
    """A message of a killed batch: its key has no state record, or one without an error type."""
    key = f"key-unrecorded-{n}"
    stage.sqs.send_message(
        QueueUrl=stage.dlq_url,
        MessageBody=json.dumps({"orderId": key, "amount": n}),
        MessageAttributes={
            MessageAttribute.IDEMPOTENCY_KEY.value: {"DataType": "String", "StringValue": key}
        },
    )
    if status is not None:
        stage.dynamodb.put_item(
            TableName=stage.table_name,
            Item={"idempotencyKey": {"S": key}, "status": {"S": status.value}, "attempts": {"N": "3"}},
        )
    return key


def test_a_filter_selects_every_message_a_killed_batch_returned(stage: Any) -> None:
    timed_out = park(stage, 1, error_type=ErrorType.TIMEOUT)
    never_begun = park_unrecorded(stage, 2)
    killed_mid_record = park_unrecorded(stage, 3, status=RecordStatus.INFLIGHT)
    park(stage, 4, error_type=ErrorType.SCHEMA_VALIDATION)
    params = parse_params(
        {"filterErrorType": f"{ErrorType.TIMEOUT.value},{NO_ERROR_TYPE}", "maxMessages": 10},
        for_start=True,
        from_query=False,
    )

    preview = mover(stage).preview(params)
    job = Jobs(stage, mover(stage)).run(params)

    assert preview["errorTypes"] == {
        ErrorType.TIMEOUT.value: 1,
        NO_ERROR_TYPE: 2,
        ErrorType.SCHEMA_VALIDATION.value: 1,
    }
    by_key = {m["idempotencyKey"]: m for m in preview["messages"]}
    assert set(by_key) == {timed_out, never_begun, killed_mid_record}
    assert by_key[never_begun]["errorType"] is None
    assert (job.counters.moved, job.counters.skipped) == (3, 1)
    moved = {attribute(m, MessageAttribute.IDEMPOTENCY_KEY) for m in stage.receive_all(stage.queue_url)}
    assert moved == {timed_out, never_begun, killed_mid_record}


def test_quarantine_never_overwrites_a_live_inflight_lease(stage: Any) -> None:
    key = park(stage, 1, redrive_count=3)
    stage.dynamodb.update_item(
        TableName=stage.table_name,
        Key={"idempotencyKey": {"S": key}},
        UpdateExpression="SET #s = :s, inflightUntil = :until REMOVE errorType",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "INFLIGHT"}, ":until": {"N": str(int(time.time()) + 300)}},
    )

    job = Jobs(stage, mover(stage, max_redrives=3)).run(RedriveParams(max_messages=10))

    assert job.counters.quarantined == 1
    assert stage.state(key)["status"] == RecordStatus.INFLIGHT.value


# --- the API ------------------------------------------------------------------------------------------
def test_start_status_cancel_through_the_api(api: Any, stage: Any, lambda_context: Any) -> None:
    park(stage, 1)
    status, started = api("POST", "/redrive/start", body={"maxMessages": 100, "perMessageDelayJitter": 5})
    assert (status, started["status"]) == (202, JobStatus.PENDING.value)
    [invocation] = api.invocations
    assert invocation["InvocationType"] == "Event"
    assert json.loads(invocation["Payload"]) == {REDRIVE_JOB_EVENT_KEY: started["jobId"]}

    result = handler.lambda_handler({REDRIVE_JOB_EVENT_KEY: started["jobId"]}, lambda_context)
    assert result["status"] == JobStatus.SUCCEEDED.value

    status, job = api("GET", "/redrive/status", query={"jobId": started["jobId"]})
    assert (status, job["status"], job["counters"]["moved"]) == (200, "SUCCEEDED", 1)
    status, body = api("POST", "/redrive/cancel", body={"jobId": started["jobId"]})
    assert (status, body["error"]) == (409, "job_finished")


def test_cancel_through_the_api(api: Any, stage: Any) -> None:
    _, started = api("POST", "/redrive/start", body={"maxMessages": 10})
    status, body = api("POST", "/redrive/cancel", body={"jobId": started["jobId"]})
    assert (status, body["status"]) == (202, JobStatus.CANCELLED.value)  # no runner yet: at once


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "status"),
    [
        ("GET", "/redrive/preview", {"maxMessages": "0"}, None, 400),
        ("GET", "/redrive/preview", {"maxMessages": "10001"}, None, 400),
        ("GET", "/redrive/preview", {"maxMessages": "ten"}, None, 400),
        ("GET", "/redrive/preview", {"maxMessages": "-1"}, None, 400),
        ("GET", "/redrive/preview", {"errorType": "Oops"}, None, 400),
        ("GET", "/redrive/preview", {"minAgeSeconds": "-5"}, None, 400),
        ("GET", "/redrive/preview", {"maxMesages": "5"}, None, 400),
        ("POST", "/redrive/start", None, {"maxMessages": 0}, 400),
        ("POST", "/redrive/start", None, {"maxMessages": "100"}, 400),
        ("POST", "/redrive/start", None, {"maxMessages": 10.5}, 400),
        ("POST", "/redrive/start", None, {"maxMessages": True}, 400),
        ("POST", "/redrive/start", None, {"perMessageDelayJitter": 901}, 400),
        ("POST", "/redrive/start", None, {"perMessageDelayJitter": -1}, 400),
        ("POST", "/redrive/start", None, {"filterErrorType": "NotAType"}, 400),
        (
            "POST",
            "/redrive/start",
            None,
            {"filterErrorType": "TransientDownstreamError", "errorType": "UnexpectedError"},
            400,
        ),
        ("POST", "/redrive/start", None, {"maxMessage": 5}, 400),
        ("POST", "/redrive/start", None, "not json", 400),
        ("POST", "/redrive/start", None, "[1, 2]", 400),
        ("POST", "/redrive/cancel", None, {}, 400),
        ("POST", "/redrive/cancel", None, {"jobId": 5}, 400),
        ("POST", "/redrive/cancel", None, {"jobId": "no-such-job"}, 404),
        ("GET", "/redrive/status", {}, None, 400),
        ("GET", "/redrive/status", {"jobId": "no-such-job"}, None, 404),
    ],
)
def test_bad_parameters_are_4xx_and_start_nothing(
    api: Any, stage: Any, method: str, path: str, *, query: Any, body: Any, status: int
) -> None:
    park(stage, 1)
    actual, response = api(method, path, query=query, body=body)
    assert actual == status
    assert response["error"]
    assert response["message"]
    assert api.invocations == []
    assert len(stage.receive_all(stage.dlq_url)) == 1


# --- failures -----------------------------------------------------------------------------------------
def test_a_job_whose_batch_raises_ends_failed_with_its_error(stage: Any) -> None:
    park(stage, 1)
    dlq_mover = mover(stage)

    def broken_receive(max_messages: int) -> Any:
        raise RuntimeError("dlq unreachable")

    dlq_mover.receive = broken_receive  # type: ignore[method-assign]
    jobs = Jobs(stage, dlq_mover)

    job = jobs.run(RedriveParams(max_messages=10))

    stored = jobs.store.get(job.job_id)
    assert job.status is stored.status is JobStatus.FAILED
    assert "dlq unreachable" in (stored.error or "")
    assert stored.finished_at
    assert stage.depth(stage.dlq_url) == 1


def test_a_job_that_cannot_start_ends_failed_with_its_error(stage: Any) -> None:
    store = JobStore(stage.dynamodb, stage.jobs_table_name, ttl_days=3)
    created: list[str] = []

    def refuse(job_id: str) -> None:
        created.append(job_id)
        raise ConnectionError("lambda unreachable")

    jobs = RedriveJobs(store=store, mover=mover(stage), start_async=refuse, pacer_factory=lambda: Pacer(10))

    with pytest.raises(JobStartFailed):
        jobs.start(RedriveParams(max_messages=10))

    [job_id] = created
    stored = store.get(job_id)
    assert stored.status is JobStatus.FAILED
    assert stored.error == "not started: lambda unreachable"
