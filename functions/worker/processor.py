"""The worker's per-record state machine (docs/architecture.md, "The worker's state machine") and its
failure modes.

One state item per idempotency key (functions.common.state_table): begin takes the key INFLIGHT
(absent, FAILED, QUARANTINED or INFLIGHT past its lease), then the attempt that holds the lease
settles it SUCCEEDED or FAILED; a SUCCEEDED key is a duplicate, a live lease is retried later.
A key reused with another payload (another checksum) is an idempotency conflict: the first record
stays as it is, a failure event announces it, the message is parked in the DLQ with errorType
IdempotencyConflict, and the IdempotencyConflicts metric counts it.

Writes per record: none for a key the batch's read already shows SUCCEEDED, in conflict or leased
elsewhere; two for a new one (begin, then succeed or fail). The worker publishes no event for a
settled record: the relay derives it from the committed change (functions/relay), so no crash
between the write and a publication can strand it.

The failure mode is read once per batch by the handler and passed in.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, MutableMapping

from functions.common.canonical import computed_key_for_text
from functions.common.events import Event, EventPublisher, event_detail, event_id_for
from functions.common.names import (
    DetailType,
    ErrorType,
    FailureMode,
    MessageAttribute,
    MetricName,
    RecordStatus,
)
from functions.common.observability import count, fields, logger, milliseconds
from functions.common.payload import ReceivedBody, SchemaError, validate_event
from functions.common.state_table import (
    AlreadySucceeded,
    BeginResult,
    Conflict,
    HeldByAnother,
    StateRecord,
    StateTable,
    classify_existing,
    iso,
)
from functions.worker.dead_letters import DeadLetterQueue
from functions.worker.sqs_record import SqsRecord

RANDOM_FAILURE_PROBABILITY = 0.3
# How far past the invocation's deadline slow_downstream sleeps: the runtime kills it first.
SLOW_DOWNSTREAM_OVERSHOOT_SECONDS = 1.0
# A record that needs writes is not started with less of the invocation left than its reserve: what
# its read-modify-write pair (and a DLQ send) needs with room to answer, at most DEADLINE_RESERVE_MS
# and an eighth of the time the batch started with (a 3 s local worker keeps 375 ms; a 1 s function
# still settles records). Past it, the batch's remaining records go back to the queue as item
# failures instead of being cut by the timeout, which returns every message of the batch, those
# already processed included (AWS Lambda Developer Guide, "Handling errors for an SQS event source
# in Lambda"), and ends the execution environment (the next invocation starts cold: "Understanding
# the Lambda execution environment lifecycle").
DEADLINE_RESERVE_MS = 1_000
DEADLINE_RESERVE_SHARE = 8


class ProcessingError(Exception):
    error_type = ErrorType.UNEXPECTED


class SchemaValidationError(ProcessingError):
    error_type = ErrorType.SCHEMA_VALIDATION


class TransientDownstreamError(ProcessingError):
    error_type = ErrorType.TRANSIENT


class DownstreamTimeoutError(ProcessingError):
    error_type = ErrorType.TIMEOUT


class InflightElsewhereError(Exception):
    """Another delivery holds the key's lease (or took it over): retry later, never a silent success."""


class DeadlineNearError(Exception):
    """Too little of the invocation is left to settle this record: it goes back to the queue untouched
    (no write, no event), to be taken by a later invocation."""


class ConflictNotAnnouncedError(Exception):
    """EventBridge refused a conflict's failure event: the message comes back and is tried again."""


class RecordProcessor:
    def __init__(
        self,
        *,
        state: StateTable,
        mode: FailureMode,
        known: MutableMapping[str, StateRecord],
        conflict_events: EventPublisher,
        dead_letters: DeadLetterQueue,
        remaining_ms: Callable[[], int],
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._state = state
        self._mode = mode
        # The batch's records as read before it ran, kept current as this batch settles keys, so a
        # second copy of a key in the same batch is a duplicate without a write.
        self._known = known
        self._conflict_events = conflict_events
        self._dead_letters = dead_letters
        self._remaining_ms = remaining_ms
        self._reserve_ms = min(DEADLINE_RESERVE_MS, remaining_ms() // DEADLINE_RESERVE_SHARE)
        self._rng = rng or random.Random()  # noqa: S311 - fault injection, not cryptography
        self._sleep = sleep
        self._clock = clock

    def _begin(self, key: str, checksum: str, now: float) -> BeginResult:
        """The claim's conditional write, if the invocation has the time left to settle the record."""
        left_ms = self._remaining_ms()
        if left_ms < self._reserve_ms:
            raise DeadlineNearError(f"{key}: {left_ms} ms left, {self._reserve_ms} reserved")
        return self._state.begin(key, checksum=checksum, now=now, lease_seconds=left_ms / 1000)

    def process(self, record: SqsRecord) -> None:
        """Settle one record; raising makes it a batch item failure (back after the visibility timeout)."""
        started = self._clock()
        key = idempotency_key_of(record)
        body = ReceivedBody.parse(record.body)
        begin = classify_existing(self._known.get(key), body.checksum, started) or self._begin(
            key, body.checksum, started
        )
        if isinstance(begin, AlreadySucceeded):
            self._duplicate(record, key)
            return
        if isinstance(begin, Conflict):
            self._conflict(record, key, begin, started)
            return
        if isinstance(begin, HeldByAnother):
            count(MetricName.INFLIGHT_CONFLICTS)
            logger.info(
                "key in flight elsewhere",
                extra=fields(
                    IDEMPOTENCY_KEY=key,
                    MESSAGE_ID=record.message_id,
                    RECORD_STATUS=begin.record.status,
                ),
            )
            raise InflightElsewhereError(key)
        attempts = begin.attempts
        try:
            self._run(body, key, attempts)
        except Exception as error:
            failure = error if isinstance(error, ProcessingError) else ProcessingError(repr(error))
            self._record_failure(record, key, attempts, failure, started)
            raise
        finished = self._clock()
        if not self._state.succeed(key, attempts=attempts, now=finished, message_id=record.message_id):
            count(MetricName.INFLIGHT_CONFLICTS)
            raise InflightElsewhereError(f"{key}: lease taken over before completion")
        self._known[key] = StateRecord(key, RecordStatus.SUCCEEDED, attempts, checksum=body.checksum)
        latency_ms = round((finished - started) * 1000, 1)
        count(MetricName.RECORDS_PROCESSED)
        milliseconds(MetricName.PROCESSING_LATENCY, latency_ms)
        logger.info(
            "record processed",
            extra=fields(
                IDEMPOTENCY_KEY=key,
                PROCESSED=True,
                LATENCY_MS=latency_ms,
                MESSAGE_ID=record.message_id,
                ATTEMPTS=attempts,
            ),
        )

    def _duplicate(self, record: SqsRecord, key: str) -> None:
        """A processed key: no write, no event (its one outcome was published from its record)."""
        count(MetricName.DUPLICATES_DETECTED)
        logger.info(
            "duplicate of a processed key",
            extra=fields(IDEMPOTENCY_KEY=key, DUPLICATE=True, MESSAGE_ID=record.message_id),
        )

    def _conflict(self, record: SqsRecord, key: str, begin: Conflict, now: float) -> None:
        """Announce the conflict, then park the message in the DLQ.

        In that order: if either step fails the message comes back (a batch item failure) and both
        run again, which repeats an event consumers dedupe (same eventId), never a DLQ copy.
        """
        error_type = ErrorType.IDEMPOTENCY_CONFLICT
        event = Event(
            DetailType.FAILURE,
            event_detail(
                EVENT_ID=event_id_for(key, error_type.value, record.message_id),
                IDEMPOTENCY_KEY=key,
                MESSAGE_ID=record.message_id,
                STATUS=RecordStatus.FAILED.value,
                ERROR_TYPE=error_type.value,
                PROCESSED_AT=iso(now),
            ),
        )
        published = self._conflict_events.publish([event])
        if not published.complete:
            raise ConflictNotAnnouncedError(f"{key}: {published.reason}")
        self._dead_letters.park(record, error_type)
        count(MetricName.IDEMPOTENCY_CONFLICTS)
        logger.warning(
            "idempotency conflict: key reused with another payload; message parked in the DLQ",
            extra=fields(
                IDEMPOTENCY_KEY=key,
                ERROR_TYPE=error_type.value,
                PROCESSED=False,
                MESSAGE_ID=record.message_id,
                RECORD_STATUS=begin.record.status,
                EVENT_ID=event.event_id,
            ),
        )

    def _run(self, body: ReceivedBody, key: str, attempts: int) -> None:
        mode = self._mode
        if mode is FailureMode.POISON_PAYLOAD:
            raise SchemaValidationError("failure mode poison_payload: payload rejected")
        if body.error is not None:
            raise SchemaValidationError(body.error)
        try:
            validate_event(body.value)
        except SchemaError as error:
            raise SchemaValidationError(str(error)) from None
        if mode is FailureMode.SLOW_DOWNSTREAM:
            # The runtime kills the invocation during this sleep, so no outcome is ever written;
            # the errorType annotation (status stays INFLIGHT) lets the redrive filter find these.
            self._state.annotate_error(key, attempts=attempts, error_type=ErrorType.TIMEOUT.value)
            self._sleep(self._remaining_ms() / 1000 + SLOW_DOWNSTREAM_OVERSHOOT_SECONDS)
            raise DownstreamTimeoutError(
                "failure mode slow_downstream: downstream call outlived the invocation"
            )
        if mode is FailureMode.RANDOM_FAIL_P30 and self._rng.random() < RANDOM_FAILURE_PROBABILITY:
            raise TransientDownstreamError("failure mode random_fail_p30: transient downstream failure")

    def _record_failure(
        self, record: SqsRecord, key: str, attempts: int, error: ProcessingError, started: float
    ) -> None:
        now = self._clock()
        error_type = error.error_type.value
        recorded = self._state.fail(
            key,
            attempts=attempts,
            error_type=error_type,
            message=str(error),
            now=now,
            message_id=record.message_id,
        )
        count(MetricName.RECORDS_FAILED)
        logger.warning(
            "record failed",
            extra=fields(
                IDEMPOTENCY_KEY=key,
                ERROR_TYPE=error_type,
                PROCESSED=False,
                LATENCY_MS=round((now - started) * 1000, 1),
                MESSAGE_ID=record.message_id,
                ATTEMPTS=attempts,
                REASON=str(error),
                STATE_RECORDED=recorded,
            ),
        )


def idempotency_key_of(record: SqsRecord) -> str:
    """The ingest's key attribute; for a message from elsewhere, the computed key of its body."""
    return record.string_attribute(MessageAttribute.IDEMPOTENCY_KEY.value) or computed_key_for_text(
        record.body
    )
