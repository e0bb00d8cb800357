"""The worker's own sends to the DLQ: a message no retry can fix, parked at once with its error type.

Today that is an idempotency conflict (a key reused with another payload). Waiting for
maxReceiveCount would re-run it several times for nothing; parking it keeps it where an operator
looks (DLQ alarms, GET /redrive/preview), with the error type as a message attribute because the
key's state record belongs to the first payload and stays untouched.
"""

from __future__ import annotations

import base64
from typing import Any

from functions.common.names import ErrorType, MessageAttribute
from functions.worker.sqs_record import SqsRecord


class DeadLetterQueue:
    def __init__(self, sqs: Any, url: str) -> None:
        self._sqs = sqs
        self._url = url

    def park(self, record: SqsRecord, error_type: ErrorType) -> str:
        """Send a copy of the record with its attributes and errorType; raises if SQS did not take it."""
        attributes = {
            name: _sendable(value)
            for name, value in record.message_attributes.items()
            if name != MessageAttribute.ERROR_TYPE.value
        }
        attributes[MessageAttribute.ERROR_TYPE.value] = {
            "DataType": "String",
            "StringValue": error_type.value,
        }
        response = self._sqs.send_message(
            QueueUrl=self._url, MessageBody=record.body, MessageAttributes=attributes
        )
        return str(response["MessageId"])


def _sendable(attribute: dict[str, Any]) -> dict[str, Any]:
    """A Lambda event's message attribute (stringValue, dataType) as SendMessage takes it."""
    sendable: dict[str, Any] = {"DataType": attribute["dataType"]}
    if attribute.get("stringValue") is not None:
        sendable["StringValue"] = attribute["stringValue"]
    if attribute.get("binaryValue") is not None:
        # The event carries binary values base64-encoded; SendMessage takes the bytes.
        sendable["BinaryValue"] = base64.b64decode(attribute["binaryValue"])
    return sendable
