"""Moving messages out of the DLQ: sampling (preview), routing, jittered sends, quarantine, pacing.

A message leaves the DLQ only after the queue it was sent to returned a MessageId for it.
Messages that do not match the filters are made visible again at once. A message whose
redriveCount already reached the limit goes to the quarantine queue instead of the main queue,
so a poison message can never loop DLQ -> main -> DLQ indefinitely; so does an idempotency
conflict, which no redelivery can fix. The pace is kept before a batch is received, so no
received message waits for the pacer while its visibility timeout runs.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from functions.common.names import NO_ERROR_TYPE, DeliveryMetricName, MessageAttribute, MetricName
from functions.common.observability import count, fields, logger
from functions.common.state_table import StateRecord, StateTable
from functions.redrive.dlq import SQS_BATCH_LIMIT, DlqMessage, DlqQueue, chunks
from functions.redrive.params import RedriveParams
from functions.redrive.routing import Route, RoutingPolicy

# Long enough to send, delete and record one batch (the pacer waits before receiving, never while
# holding messages), short enough that a crashed job's messages reappear in the DLQ quickly. A
# message held past it becomes visible again and can be received (and sent) a second time
# (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html).
RECEIVE_VISIBILITY_SECONDS = 60
PREVIEW_SAMPLE_LIMIT = 100
# A preview answers within the API's 30-second integration timeout even on a deep DLQ.
PREVIEW_SCAN_LIMIT = 500
PREVIEW_VISIBILITY_SECONDS = 30


@dataclass
class Counters:
    received: int = 0
    moved: int = 0
    skipped: int = 0
    quarantined: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> Counters:
        known = cls.__dataclass_fields__
        return cls(**{name: int(value) for name, value in (values or {}).items() if name in known})

    def add(self, other: Counters) -> None:
        for name, value in other.as_dict().items():
            setattr(self, name, getattr(self, name) + value)


class Pacer:
    """At most `rate` messages per second on average since the first batch, in bursts <= one batch.

    Used before a batch is received: wait_seconds() says how long the next batch must wait (the job
    hands over instead when that would overrun its invocation), admit() waits and reserves the
    batch, refund() returns what the batch did not send.
    """

    def __init__(
        self,
        rate_per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate_per_second
        self._clock = clock
        self._sleep = sleep
        self._started: float | None = None
        self._admitted = 0

    @property
    def batch_size(self) -> int:
        return max(1, min(SQS_BATCH_LIMIT, int(self.rate)))

    def wait_seconds(self) -> float:
        if self._started is None:
            return 0.0
        return max(0.0, self._started + self._admitted / self.rate - self._clock())

    def admit(self, messages: int) -> None:
        wait = self.wait_seconds()
        if wait > 0:
            self._sleep(wait)
        if self._started is None:
            self._started = self._clock()
        self._admitted += messages

    def refund(self, messages: int) -> None:
        self._admitted -= messages


@dataclass
class BatchOutcome:
    counters: Counters = field(default_factory=Counters)
    new_messages: int = 0


@dataclass(frozen=True)
class Triaged:
    """A received message with what the state table knows of its key and the route it takes."""

    message: DlqMessage
    record: StateRecord | None
    error_type: str | None
    route: Route


class _Settle(Protocol):
    def __call__(self, idempotency_key: str, *, redrive_count: int, job_id: str, now: float) -> bool: ...


@dataclass(frozen=True)
class Destination:
    """Where one route sends its messages, and what a send there means for the message's key."""

    route: Route
    queue_url: str
    # Quarantine keeps the count that condemned the message; a redrive to the main queue adds one.
    redrives_added: int
    # Jitter spreads a replay over time for the consumer; a parked message has no consumer.
    jittered: bool
    # What a send records on the key's state item (None: the record is not the message's to change).
    settle: _Settle | None
    metric: MetricName

    def next_count(self, message: DlqMessage) -> int:
        return message.redrive_count + self.redrives_added


class DlqMover:
    def __init__(
        self,
        *,
        sqs: Any,
        state: StateTable,
        dlq_url: str,
        queue_url: str,
        quarantine_url: str,
        max_redrives_per_message: int,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        wait_seconds: int = 1,
    ) -> None:
        self._sqs = sqs
        self._state = state
        self.dlq = DlqQueue(sqs, dlq_url, wait_seconds=wait_seconds)
        self.max_redrives_per_message = max_redrives_per_message
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._clock = clock
        self._destinations = {
            Route.MAIN: Destination(
                Route.MAIN,
                queue_url,
                1,
                jittered=True,
                settle=state.record_redrive,
                metric=MetricName.REDRIVE_MOVED,
            ),
            Route.QUARANTINE: Destination(
                Route.QUARANTINE,
                quarantine_url,
                0,
                jittered=False,
                settle=state.quarantine,
                metric=MetricName.REDRIVE_QUARANTINED,
            ),
            Route.CONFLICT: Destination(
                Route.CONFLICT,
                quarantine_url,
                0,
                jittered=False,
                settle=None,
                metric=MetricName.REDRIVE_QUARANTINED,
            ),
        }

    def receive(self, max_messages: int) -> list[DlqMessage]:
        return self.dlq.receive(max_messages, visibility_seconds=RECEIVE_VISIBILITY_SECONDS)

    def policy(self, params: RedriveParams) -> RoutingPolicy:
        return RoutingPolicy(params, self.max_redrives_per_message)

    def triage(self, message: DlqMessage, policy: RoutingPolicy, now: float) -> Triaged:
        """The message's error type is its own attribute when the worker parked it itself, else its key's."""
        own = message.attribute(MessageAttribute.ERROR_TYPE)
        record = self._state.get(message.idempotency_key) if message.idempotency_key and not own else None
        error_type = own or (record.error_type if record else None)
        return Triaged(message, record, error_type, policy.route(message, error_type, now))

    # --- preview --------------------------------------------------------------------------------------
    def preview(self, params: RedriveParams) -> dict[str, Any]:
        """Sample matching DLQ messages; deletes nothing and makes every received message visible again."""
        policy = self.policy(params)
        wanted = min(params.max_messages, PREVIEW_SAMPLE_LIMIT)
        received: dict[str, DlqMessage] = {}
        samples: list[dict[str, Any]] = []
        # Every scanned message by error type (NO_ERROR_TYPE: none recorded, e.g. a killed batch's).
        error_types: dict[str, int] = {}
        try:
            while len(samples) < wanted and len(received) < PREVIEW_SCAN_LIMIT:
                batch = self.dlq.receive(SQS_BATCH_LIMIT, visibility_seconds=PREVIEW_VISIBILITY_SECONDS)
                new = [message for message in batch if message.message_id not in received]
                received.update({message.message_id: message for message in batch})
                if not new:
                    break
                now = self._clock()
                for message in new:
                    item = self.triage(message, policy, now)
                    name = item.error_type or NO_ERROR_TYPE
                    error_types[name] = error_types.get(name, 0) + 1
                    if item.route is not Route.SKIP and len(samples) < wanted:
                        samples.append(describe(item, now))
        finally:
            self.dlq.release(list(received.values()))
        return {
            "dlqDepth": self.dlq.depth(),
            "scanned": len(received),
            "matched": len(samples),
            "sampleLimit": PREVIEW_SAMPLE_LIMIT,
            "scanLimit": PREVIEW_SCAN_LIMIT,
            "maxRedrivesPerMessage": self.max_redrives_per_message,
            "filters": params.to_item(),
            "errorTypes": error_types,
            "messages": samples,
        }

    # --- moving ------------------------------------------------------------------------------------
    def move(
        self, messages: list[DlqMessage], params: RedriveParams, *, job_id: str, seen: set[str]
    ) -> BatchOutcome:
        """Route one received batch, send the routed messages on, delete what was sent."""
        outcome = BatchOutcome()
        counters = outcome.counters
        policy = self.policy(params)
        now = self._clock()
        # Received again after an earlier release: counted once, released again.
        repeats = [message for message in messages if message.message_id in seen]
        fresh = [message for message in messages if message.message_id not in seen]
        seen.update(message.message_id for message in fresh)
        outcome.new_messages = counters.received = len(fresh)
        routed: dict[Route, list[DlqMessage]] = {route: [] for route in Route}
        for message in fresh:
            routed[self.triage(message, policy, now).route].append(message)
        counters.skipped = len(routed[Route.SKIP])
        self.dlq.release(repeats + routed[Route.SKIP])
        sent = {
            route: self._forward(routed[route], destination, params, job_id)
            for route, destination in self._destinations.items()
        }
        counters.moved = sent[Route.MAIN]
        counters.quarantined = sent[Route.QUARANTINE] + sent[Route.CONFLICT]
        counters.failed = sum(len(routed[route]) for route in self._destinations) - sum(sent.values())
        if counters.failed:
            count(DeliveryMetricName.REDRIVE_SEND_FAILED, counters.failed)
        return outcome

    def _forward(
        self, messages: list[DlqMessage], destination: Destination, params: RedriveParams, job_id: str
    ) -> int:
        """Send to the destination, then delete from the DLQ exactly what it took; returns that count."""
        sent = 0
        for chunk in chunks(messages):
            accepted = self._send_chunk(chunk, destination, params, job_id)
            accepted_ids = {message.message_id for message in accepted}
            self.dlq.release([message for message in chunk if message.message_id not in accepted_ids])
            self.dlq.delete(accepted)
            for message in accepted:
                self._settle(message, destination, job_id)
            sent += len(accepted)
        if sent:
            count(destination.metric, sent)
        return sent

    def _send_chunk(
        self, chunk: list[DlqMessage], destination: Destination, params: RedriveParams, job_id: str
    ) -> list[DlqMessage]:
        """The messages of the chunk that the destination queue returned a MessageId for."""
        max_delay = params.per_message_delay_jitter if destination.jittered else 0
        entries = [
            {
                "Id": str(index),
                "MessageBody": message.body,
                "MessageAttributes": message.resend_attributes(
                    redrive_count=destination.next_count(message), job_id=job_id
                ),
                "DelaySeconds": self._rng.randint(0, max_delay) if max_delay else 0,
            }
            for index, message in enumerate(chunk)
        ]
        try:
            response = self._sqs.send_message_batch(QueueUrl=destination.queue_url, Entries=entries)
        except (ClientError, BotoCoreError):
            logger.exception(
                "redrive send failed",
                extra=fields(QUEUE_URL=destination.queue_url, MESSAGE_COUNT=len(chunk)),
            )
            return []
        for failure in response.get("Failed", []):
            logger.error(
                "redrive send rejected",
                extra=fields(MESSAGE_ID=chunk[int(failure["Id"])].message_id, ERROR_CODE=failure.get("Code")),
            )
        accepted = {int(result["Id"]) for result in response.get("Successful", []) if result.get("MessageId")}
        return [message for index, message in enumerate(chunk) if index in accepted]

    def _settle(self, message: DlqMessage, destination: Destination, job_id: str) -> None:
        redrive_count = destination.next_count(message)
        if message.idempotency_key and destination.settle is not None:
            try:
                destination.settle(
                    message.idempotency_key, redrive_count=redrive_count, job_id=job_id, now=self._clock()
                )
            except (ClientError, BotoCoreError):
                # The message already moved; its attribute still carries the count that matters.
                logger.exception(
                    "redrive count not recorded", extra=fields(IDEMPOTENCY_KEY=message.idempotency_key)
                )
        if destination.route is not Route.MAIN:
            logger.warning(
                "message quarantined",
                extra=fields(
                    IDEMPOTENCY_KEY=message.idempotency_key,
                    REDRIVE_JOB_ID=job_id,
                    MESSAGE_ID=message.message_id,
                    REDRIVE_COUNT=redrive_count,
                    ROUTE=destination.route.value,
                ),
            )


def describe(item: Triaged, now: float) -> dict[str, Any]:
    """One preview line: what an operator needs to decide on a message."""
    message = item.message
    return {
        "messageId": message.message_id,
        "idempotencyKey": message.idempotency_key,
        "errorType": item.error_type,
        "status": item.record.status.value if item.record and item.record.status else None,
        "errorTypeCandidate": message.attribute(MessageAttribute.ERROR_TYPE_CANDIDATE),
        "ageSeconds": round(message.age_seconds(now), 1),
        "receiveCount": message.receive_count,
        "redriveCount": message.redrive_count,
        "route": item.route.value,
        "wouldQuarantine": item.route in {Route.QUARANTINE, Route.CONFLICT},
    }
