"""The dead-letter queue as the redrive sees it: typed messages, receive, release, delete, depth."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from functions.common.names import MessageAttribute
from functions.common.observability import fields, logger

SQS_BATCH_LIMIT = 10
T = TypeVar("T")


def chunks(items: Sequence[T], size: int = SQS_BATCH_LIMIT) -> Iterable[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


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
        raw_count = _string_attribute(attributes, MessageAttribute.REDRIVE_COUNT)
        return cls(
            message_id=message["MessageId"],
            receipt_handle=message["ReceiptHandle"],
            body=message["Body"],
            attributes=attributes,
            idempotency_key=_string_attribute(attributes, MessageAttribute.IDEMPOTENCY_KEY),
            redrive_count=int(raw_count) if raw_count and raw_count.isdigit() else 0,
            sent_timestamp_ms=int(system.get("SentTimestamp", "0")),
            receive_count=int(system.get("ApproximateReceiveCount", "0")),
        )

    def attribute(self, name: MessageAttribute) -> str | None:
        return _string_attribute(self.attributes, name)

    def age_seconds(self, now: float) -> float:
        # No SentTimestamp (an emulator that omits it): age 0, so a minAgeSeconds filter never matches.
        if not self.sent_timestamp_ms:
            return 0.0
        return max(0.0, now - self.sent_timestamp_ms / 1000)

    def resend_attributes(self, *, redrive_count: int, job_id: str) -> dict[str, Any]:
        """The message's attributes for its next queue, with the redrive count and job stamped."""
        carried = {
            name: {key: value[key] for key in ("DataType", "StringValue", "BinaryValue") if key in value}
            for name, value in self.attributes.items()
        }
        carried[MessageAttribute.REDRIVE_COUNT.value] = {
            "DataType": "Number",
            "StringValue": str(redrive_count),
        }
        carried[MessageAttribute.REDRIVE_JOB_ID.value] = {"DataType": "String", "StringValue": job_id}
        return carried


def _string_attribute(attributes: dict[str, Any], name: MessageAttribute) -> str | None:
    value = attributes.get(name.value)
    return value.get("StringValue") if value else None


class DlqQueue:
    """Receive, make visible again, delete: every call the redrive makes on the DLQ."""

    def __init__(self, sqs: Any, url: str, *, wait_seconds: int = 1) -> None:
        self._sqs = sqs
        self.url = url
        self._wait_seconds = wait_seconds

    def receive(self, max_messages: int, *, visibility_seconds: int) -> list[DlqMessage]:
        response = self._sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=max(1, min(SQS_BATCH_LIMIT, max_messages)),
            VisibilityTimeout=visibility_seconds,
            # Short polling samples a subset of SQS's servers; a brief long poll queries them all,
            # so a small, non-empty DLQ is not reported empty by sampling.
            WaitTimeSeconds=self._wait_seconds,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
        )
        return [DlqMessage.from_sqs(message) for message in response.get("Messages", [])]

    def release(self, messages: Sequence[DlqMessage]) -> int:
        """Make messages visible in the DLQ again at once; returns how many SQS refused."""
        refused = 0
        for chunk in chunks(messages):
            response = self._sqs.change_message_visibility_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message.receipt_handle, "VisibilityTimeout": 0}
                    for index, message in enumerate(chunk)
                ],
            )
            refused += len(response.get("Failed", []))
        return refused

    def delete(self, messages: Sequence[DlqMessage]) -> None:
        for chunk in chunks(messages):
            response = self._sqs.delete_message_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message.receipt_handle}
                    for index, message in enumerate(chunk)
                ],
            )
            for failure in response.get("Failed", []):
                # Already sent: the copy left in the DLQ is a duplicate that the worker's idempotency absorbs.
                logger.warning(
                    "sent but not deleted from the DLQ",
                    extra=fields(
                        MESSAGE_ID=chunk[int(failure["Id"])].message_id, ERROR_CODE=failure.get("Code")
                    ),
                )

    def depth(self) -> int:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessages", 0))
