"""The worker's per-record state machine and its failure modes.

One state item per idempotency key (functions.common.state_table): begin takes the key INFLIGHT
(absent, FAILED, QUARANTINED or INFLIGHT past its lease), then the attempt that holds the lease
settles it SUCCEEDED or FAILED; a SUCCEEDED key is a duplicate, a live lease is retried later.
A key reused with another payload (another checksum) is an idempotency conflict: the first record
stays as it is, the message is parked in the DLQ with errorType IdempotencyConflict, and a failure
event and the IdempotencyConflicts metric announce it.

The failure mode is read once per batch by the handler and passed in.

Success events go through an outbox on the state item (eventDetail, eventPublished), so an invocation
killed before PutEvents loses none: its redelivery re-sends the same event. Events are at-least-once
(a crash between PutEvents and the mark re-sends one); consumers dedupe on idempotencyKey.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from functools import partial

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import BotoCoreError, ClientError

from functions.common.canonical import computed_key_for_text
from functions.common.names import (
    DeliveryMetricName,
    DetailType,
    ErrorType,
    FailureMode,
    MessageAttribute,
    MetricName,
    RecordStatus,
)
from functions.common.observability import count, fields, logger, milliseconds
from functions.common.payload import ReceivedBody, SchemaError, validate_event
from functions.common.state_table import AlreadySucceeded, Conflict, HeldByAnother, StateTable, iso
from functions.worker.dead_letters import DeadLetterQueue
from functions.worker.events import EventBatch, event_detail

RANDOM_FAILURE_PROBABILITY = 0.3
# How far past the invocation's deadline slow_downstream sleeps: the runtime kills it first.
SLOW_DOWNSTREAM_OVERSHOOT_SECONDS = 1.0


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


class RecordProcessor:
    def __init__(
        self,
        *,
        state: StateTable,
        mode: FailureMode,
        events: EventBatch,
        dead_letters: DeadLetterQueue,
        remaining_ms: Callable[[], int],
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._state = state
        self._mode = mode
        self._events = events
        self._dead_letters = dead_letters
        self._remaining_ms = remaining_ms
        self._rng = rng or random.Random()  # noqa: S311 - fault injection, not cryptography
        self._sleep = sleep
        self._clock = clock

    def process(self, record: SQSRecord) -> None:
        """Settle one record; raising makes it a batch item failure (back after the visibility timeout)."""
        started = self._clock()
        key = idempotency_key_of(record)
        body = ReceivedBody.parse(record.body)
        begin = self._state.begin(
            key, checksum=body.checksum, now=started, lease_seconds=self._remaining_ms() / 1000
        )
        if isinstance(begin, AlreadySucceeded):
            self._duplicate(record, key, begin, started)
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
        detail = event_detail(
            IDEMPOTENCY_KEY=key,
            MESSAGE_ID=record.message_id,
            STATUS=RecordStatus.SUCCEEDED.value,
            ATTEMPTS=attempts,
            PROCESSED_AT=iso(finished),
        )
        if not self._state.succeed(key, attempts=attempts, now=finished, event=detail):
            count(MetricName.INFLIGHT_CONFLICTS)
            raise InflightElsewhereError(f"{key}: lease taken over before completion")
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
        self._events.add(
            DetailType.SUCCESS,
            detail,
            message_id=record.message_id,
            on_published=partial(self._mark_published, key),
        )

    def _duplicate(self, record: SQSRecord, key: str, begin: AlreadySucceeded, now: float) -> None:
        """A processed key: silent, unless its success event was orphaned by a killed invocation."""
        count(MetricName.DUPLICATES_DETECTED)
        orphaned = begin.record.orphaned_event(now)
        # The claim (a conditional UpdateItem) lets one of concurrent redeliveries re-send it, not all.
        if orphaned is not None and not self._state.claim_orphaned_event(
            key, now=now, lease_seconds=self._remaining_ms() / 1000
        ):
            orphaned = None
        logger.info(
            "duplicate of a processed key",
            extra=fields(
                IDEMPOTENCY_KEY=key,
                DUPLICATE=True,
                MESSAGE_ID=record.message_id,
                REPUBLISHING_EVENT=orphaned is not None,
            ),
        )
        if orphaned is not None:
            count(DeliveryMetricName.EVENTS_REPUBLISHED)
            self._events.add(
                DetailType.SUCCESS,
                orphaned,
                message_id=record.message_id,
                on_published=partial(self._mark_published, key),
            )

    def _conflict(self, record: SQSRecord, key: str, begin: Conflict, now: float) -> None:
        """Park the message in the DLQ (raises, so the message comes back, if SQS refuses) and say so."""
        error_type = ErrorType.IDEMPOTENCY_CONFLICT
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
            ),
        )
        self._events.add(
            DetailType.FAILURE,
            event_detail(
                IDEMPOTENCY_KEY=key,
                MESSAGE_ID=record.message_id,
                STATUS=RecordStatus.FAILED.value,
                ERROR_TYPE=error_type.value,
                PROCESSED_AT=iso(now),
            ),
            message_id=record.message_id,
        )

    def _mark_published(self, key: str) -> None:
        # Runs after PutEvents accepted the entry: a crash before this write makes the event
        # at-least-once (the next delivery of the key re-sends it; consumers dedupe on idempotencyKey).
        try:
            self._state.mark_event_published(key)
        except (ClientError, BotoCoreError) as error:
            # The event is out; an unmarked key only means a later redelivery may send it again.
            logger.warning(
                "event published but not marked", extra=fields(IDEMPOTENCY_KEY=key, REASON=str(error))
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
            # Records settled earlier in this batch must not lose their events with the invocation.
            self._events.publish()
            self._sleep(self._remaining_ms() / 1000 + SLOW_DOWNSTREAM_OVERSHOOT_SECONDS)
            raise DownstreamTimeoutError(
                "failure mode slow_downstream: downstream call outlived the invocation"
            )
        if mode is FailureMode.RANDOM_FAIL_P30 and self._rng.random() < RANDOM_FAILURE_PROBABILITY:
            raise TransientDownstreamError("failure mode random_fail_p30: transient downstream failure")

    def _record_failure(
        self, record: SQSRecord, key: str, attempts: int, error: ProcessingError, started: float
    ) -> None:
        now = self._clock()
        error_type = error.error_type.value
        recorded = self._state.fail(
            key, attempts=attempts, error_type=error_type, message=str(error), now=now
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
        # No outbox for failure events: the message is a batch item failure, and a FAILED key is
        # taken again by its next delivery (or redrive), whose own outcome is announced.
        self._events.add(
            DetailType.FAILURE,
            event_detail(
                IDEMPOTENCY_KEY=key,
                MESSAGE_ID=record.message_id,
                STATUS=RecordStatus.FAILED.value,
                ERROR_TYPE=error_type,
                ATTEMPTS=attempts,
                PROCESSED_AT=iso(now),
            ),
            message_id=record.message_id,
        )


def idempotency_key_of(record: SQSRecord) -> str:
    """The ingest's key attribute; for a message from elsewhere, the computed key of its body."""
    # Powertools' __getitem__ answers None for a missing name (its .get returns the raw dict).
    attribute = record.message_attributes[MessageAttribute.IDEMPOTENCY_KEY.value]
    value = attribute.string_value if attribute is not None else None
    return value or computed_key_for_text(record.body)
