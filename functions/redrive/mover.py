"""Moving messages out of the DLQ: sampling (preview), filtering, paced and jittered sends, quarantine.

A message leaves the DLQ only after the queue it was sent to returned a MessageId for it.
Messages that do not match the filters are made visible again at once. A message whose
redriveCount already reached the limit goes to the quarantine queue instead of the main queue,
so a poison message can never loop DLQ -> main -> DLQ indefinitely.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.common.names import DeliveryMetricName, MessageAttribute, MetricName
from functions.common.observability import count, fields, logger
from functions.common.state_table import StateTable
from functions.redrive.params import RedriveParams

SQS_BATCH_LIMIT = 10
# Long enough to send and delete a batch (pacing sleeps included), short enough that a crashed
# job's messages reappear in the DLQ quickly.
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


@dataclass(frozen=True)
class DlqMessage:
    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, Any]
    idempotency_key: str | None
    redrive_count: int
    sent_timestamp_ms: int
    receive_count: int

    @classmethod
    def from_sqs(cls, message: dict[str, Any]) -> DlqMessage:
        attributes = message.get("MessageAttributes") or {}
        system = message.get("Attributes") or {}

        def string_attribute(name: MessageAttribute) -> str | None:
            value = attributes.get(name.value)
            return value.get("StringValue") if value else None

        raw_count = string_attribute(MessageAttribute.REDRIVE_COUNT)
        return cls(
            message_id=message["MessageId"],
            receipt_handle=message["ReceiptHandle"],
            body=message["Body"],
            attributes=attributes,
            idempotency_key=string_attribute(MessageAttribute.IDEMPOTENCY_KEY),
            redrive_count=int(raw_count) if raw_count and raw_count.isdigit() else 0,
            sent_timestamp_ms=int(system.get("SentTimestamp", "0")),
            receive_count=int(system.get("ApproximateReceiveCount", "0")),
        )

    def age_seconds(self, now: float) -> float:
        # No SentTimestamp (an emulator that omits it): age 0, so a minAgeSeconds filter never matches.
        if not self.sent_timestamp_ms:
            return 0.0
        return max(0.0, now - self.sent_timestamp_ms / 1000)


class Pacer:
    """At most `rate` messages per second on average since the first send, in bursts <= one batch."""

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

    def admit(self, messages: int) -> None:
        now = self._clock()
        if self._started is None:
            self._started = now
        due = self._started + self._admitted / self.rate
        if due > now:
            self._sleep(due - now)
        self._admitted += messages


@dataclass
class BatchOutcome:
    counters: Counters = field(default_factory=Counters)
    new_messages: int = 0


def _resend_attributes(message: DlqMessage, *, redrive_count: int, job_id: str) -> dict[str, Any]:
    carried = {
        name: {key: value[key] for key in ("DataType", "StringValue", "BinaryValue") if key in value}
        for name, value in message.attributes.items()
    }
    carried[MessageAttribute.REDRIVE_COUNT.value] = {"DataType": "Number", "StringValue": str(redrive_count)}
    carried[MessageAttribute.REDRIVE_JOB_ID.value] = {"DataType": "String", "StringValue": job_id}
    return carried


def _chunks(items: list[Any], size: int = SQS_BATCH_LIMIT) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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
        self._dlq_url = dlq_url
        self._queue_url = queue_url
        self._quarantine_url = quarantine_url
        self.max_redrives_per_message = max_redrives_per_message
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._clock = clock
        self._wait_seconds = wait_seconds

    # --- receiving and releasing ------------------------------------------------------------------
    def receive(
        self, max_messages: int, *, visibility_seconds: int = RECEIVE_VISIBILITY_SECONDS
    ) -> list[DlqMessage]:
        response = self._sqs.receive_message(
            QueueUrl=self._dlq_url,
            MaxNumberOfMessages=max(1, min(SQS_BATCH_LIMIT, max_messages)),
            VisibilityTimeout=visibility_seconds,
            # A short long-poll asks every SQS server, so a small DLQ is not reported empty by sampling.
            WaitTimeSeconds=self._wait_seconds,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
        )
        return [DlqMessage.from_sqs(message) for message in response.get("Messages", [])]

    def release(self, messages: list[DlqMessage]) -> int:
        """Make messages visible in the DLQ again at once; returns how many SQS refused."""
        refused = 0
        for chunk in _chunks(messages):
            response = self._sqs.change_message_visibility_batch(
                QueueUrl=self._dlq_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message.receipt_handle, "VisibilityTimeout": 0}
                    for index, message in enumerate(chunk)
                ],
            )
            refused += len(response.get("Failed", []))
        return refused

    def dlq_depth(self) -> int:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self._dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessages", 0))

    # --- filtering ----------------------------------------------------------------------------------
    def _error_type(self, message: DlqMessage) -> tuple[str | None, str | None]:
        if not message.idempotency_key:
            return None, None
        item = self._state.get(message.idempotency_key) or {}
        return item.get("errorType"), item.get("status")

    def matches(self, message: DlqMessage, params: RedriveParams, now: float) -> bool:
        if message.age_seconds(now) < params.min_age_seconds:
            return False
        if params.filter_error_type is None:
            return True
        error_type, _ = self._error_type(message)
        return error_type == params.filter_error_type

    # --- preview --------------------------------------------------------------------------------------
    def preview(self, params: RedriveParams) -> dict[str, Any]:
        """Sample matching DLQ messages; deletes nothing and makes every received message visible again."""
        wanted = min(params.max_messages, PREVIEW_SAMPLE_LIMIT)
        received: dict[str, DlqMessage] = {}
        samples: list[dict[str, Any]] = []
        try:
            while len(samples) < wanted and len(received) < PREVIEW_SCAN_LIMIT:
                batch = self.receive(SQS_BATCH_LIMIT, visibility_seconds=PREVIEW_VISIBILITY_SECONDS)
                new = [message for message in batch if message.message_id not in received]
                received.update({message.message_id: message for message in batch})
                if not new:
                    break
                now = self._clock()
                for message in new:
                    if len(samples) < wanted and message.age_seconds(now) >= params.min_age_seconds:
                        error_type, status = self._error_type(message)
                        if params.filter_error_type in (None, error_type):
                            samples.append(self._describe(message, error_type, status, now))
        finally:
            self.release(list(received.values()))
        return {
            "dlqDepth": self.dlq_depth(),
            "scanned": len(received),
            "matched": len(samples),
            "sampleLimit": PREVIEW_SAMPLE_LIMIT,
            "scanLimit": PREVIEW_SCAN_LIMIT,
            "maxRedrivesPerMessage": self.max_redrives_per_message,
            "filters": params.as_dict(),
            "messages": samples,
        }

    def _describe(
        self, message: DlqMessage, error_type: str | None, status: str | None, now: float
    ) -> dict[str, Any]:
        candidate = message.attributes.get(MessageAttribute.ERROR_TYPE_CANDIDATE.value, {}).get("StringValue")
        return {
            "messageId": message.message_id,
            "idempotencyKey": message.idempotency_key,
            "errorType": error_type,
            "status": status,
            "errorTypeCandidate": candidate,
            "ageSeconds": round(message.age_seconds(now), 1),
            "receiveCount": message.receive_count,
            "redriveCount": message.redrive_count,
            "wouldQuarantine": message.redrive_count >= self.max_redrives_per_message,
        }

    # --- moving ------------------------------------------------------------------------------------
    def move(
        self, messages: list[DlqMessage], params: RedriveParams, *, job_id: str, seen: set[str], pacer: Pacer
    ) -> BatchOutcome:
        """Filter one received batch, send the matching messages on, delete what was sent."""
        outcome = BatchOutcome()
        counters = outcome.counters
        now = self._clock()
        to_release: list[DlqMessage] = []
        to_main: list[DlqMessage] = []
        to_quarantine: list[DlqMessage] = []
        for message in messages:
            if message.message_id in seen:
                # Received again after an earlier release: counted once, released again.
                to_release.append(message)
                continue
            seen.add(message.message_id)
            outcome.new_messages += 1
            counters.received += 1
            if not self.matches(message, params, now):
                counters.skipped += 1
                to_release.append(message)
            elif message.redrive_count >= self.max_redrives_per_message:
                to_quarantine.append(message)
            else:
                to_main.append(message)
        self.release(to_release)
        if to_main or to_quarantine:
            pacer.admit(len(to_main) + len(to_quarantine))
        sent_main = self._send(to_main, self._queue_url, params, job_id=job_id, quarantine=False)
        sent_quarantine = self._send(
            to_quarantine, self._quarantine_url, params, job_id=job_id, quarantine=True
        )
        counters.moved = len(sent_main)
        counters.quarantined = len(sent_quarantine)
        counters.failed = len(to_main) + len(to_quarantine) - counters.moved - counters.quarantined
        if counters.moved:
            count(MetricName.REDRIVE_MOVED, counters.moved)
        if counters.quarantined:
            count(MetricName.REDRIVE_QUARANTINED, counters.quarantined)
        if counters.failed:
            count(DeliveryMetricName.REDRIVE_SEND_FAILED, counters.failed)
        return outcome

    def _send(
        self,
        messages: list[DlqMessage],
        queue_url: str,
        params: RedriveParams,
        *,
        job_id: str,
        quarantine: bool,
    ) -> list[DlqMessage]:
        """Send, then delete from the DLQ exactly the messages the target queue took; returns those."""
        sent: list[DlqMessage] = []
        for chunk in _chunks(messages):
            entries = []
            for index, message in enumerate(chunk):
                # Quarantine keeps the count that condemned the message; a redrive adds one.
                next_count = message.redrive_count if quarantine else message.redrive_count + 1
                entry: dict[str, Any] = {
                    "Id": str(index),
                    "MessageBody": message.body,
                    "MessageAttributes": _resend_attributes(message, redrive_count=next_count, job_id=job_id),
                }
                if not quarantine:
                    entry["DelaySeconds"] = self._rng.randint(0, params.per_message_delay_jitter)
                entries.append(entry)
            try:
                response = self._sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
            except (ClientError, BotoCoreError):
                logger.exception("redrive send failed", extra={"queueUrl": queue_url, "messages": len(chunk)})
                self.release(chunk)
                continue
            accepted = {
                int(result["Id"]) for result in response.get("Successful", []) if result.get("MessageId")
            }
            for failure in response.get("Failed", []):
                logger.error(
                    "redrive send rejected",
                    extra={"messageId": chunk[int(failure["Id"])].message_id, "code": failure.get("Code")},
                )
            chunk_sent = [message for index, message in enumerate(chunk) if index in accepted]
            self.release([message for index, message in enumerate(chunk) if index not in accepted])
            self._delete(chunk_sent)
            for message in chunk_sent:
                self._record(message, job_id=job_id, quarantine=quarantine)
            sent.extend(chunk_sent)
        return sent

    def _delete(self, messages: list[DlqMessage]) -> None:
        if not messages:
            return
        response = self._sqs.delete_message_batch(
            QueueUrl=self._dlq_url,
            Entries=[
                {"Id": str(index), "ReceiptHandle": message.receipt_handle}
                for index, message in enumerate(messages)
            ],
        )
        for failure in response.get("Failed", []):
            # Already sent: the copy left in the DLQ is a duplicate that the worker's idempotency absorbs.
            logger.warning(
                "sent but not deleted from the DLQ",
                extra={"messageId": messages[int(failure["Id"])].message_id, "code": failure.get("Code")},
            )

    def _record(self, message: DlqMessage, *, job_id: str, quarantine: bool) -> None:
        if not message.idempotency_key:
            return
        redrive_count = message.redrive_count if quarantine else message.redrive_count + 1
        try:
            self._state.record_redrive(
                message.idempotency_key,
                redrive_count=redrive_count,
                job_id=job_id,
                now=self._clock(),
                quarantined=quarantine,
            )
        except (ClientError, BotoCoreError):
            # The message already moved; its attribute still carries the count that matters.
            logger.exception(
                "redrive count not recorded", extra=fields(IDEMPOTENCY_KEY=message.idempotency_key)
            )
        if quarantine:
            logger.warning(
                "message quarantined",
                extra={
                    **fields(IDEMPOTENCY_KEY=message.idempotency_key, REDRIVE_JOB_ID=job_id),
                    "messageId": message.message_id,
                    "redriveCount": redrive_count,
                },
            )
