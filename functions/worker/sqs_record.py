"""One record of the SQS event Lambda hands the worker, read by the fields the worker uses.

By hand where Powertools' SQSRecord would do it: that class lives in the package of every event
class of every service (`aws_lambda_powertools.utilities.data_classes`), and importing it loads them
all, about 25 ms of the worker's cold start (issue 14, docs/performance.md), for three fields. The
record's shape is the AWS Lambda Developer Guide's ("Using Lambda with Amazon SQS", example SQS
message event): messageId, body, and messageAttributes as {name: {"stringValue", "binaryValue",
"dataType"}}.
"""

from __future__ import annotations

from typing import Any


class SqsRecord:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    @property
    def message_id(self) -> str:
        message_id: str = self.raw["messageId"]
        return message_id

    @property
    def body(self) -> str:
        body: str = self.raw["body"]
        return body

    @property
    def message_attributes(self) -> dict[str, dict[str, Any]]:
        """As the event carries them (binary values base64-encoded); none when the message has none."""
        return dict(self.raw.get("messageAttributes") or {})

    def string_attribute(self, name: str) -> str | None:
        attribute = self.message_attributes.get(name)
        value: str | None = attribute.get("stringValue") if attribute is not None else None
        return value
