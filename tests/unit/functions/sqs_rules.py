"""The moto SQS client with a rule SQS enforces and moto does not: the characters a message may hold.

SendMessage API reference (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/
API_SendMessage.html), MessageBody: "A message can include only XML, JSON, and unformatted text.
The following Unicode characters are allowed: #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD |
#x10000 to #x10FFFF". The reference has described two outcomes for other characters: the request is
refused (InvalidMessageContents) or the characters are replaced with U+FFFD. Either way the queued
message is not the accepted one; this wrapper refuses, as the issue reproduced it (a 503 that no
retry fixes). The rule is written here from the document, not imported from the code under test.
"""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import ClientError

OUTSIDE_SQS_CHARACTERS = re.compile("[^\\x09\\x0a\\x0d\\x20-\\ud7ff\\ue000-\\ufffd\\U00010000-\\U0010ffff]")


def _invalid(entry: dict[str, Any]) -> bool:
    texts = [entry.get("MessageBody", "")] + [
        value.get("StringValue", "") for value in (entry.get("MessageAttributes") or {}).values()
    ]
    return any(OUTSIDE_SQS_CHARACTERS.search(text) for text in texts)


class SqsWithCharacterRule:
    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        if _invalid(kwargs):
            self.refused += 1
            raise ClientError(
                {"Error": {"Code": "InvalidMessageContents", "Message": "Invalid characters found."}},
                "SendMessage",
            )
        return dict(self._sqs.send_message(**kwargs))

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        refused = [entry for entry in Entries if _invalid(entry)]
        kept = [entry for entry in Entries if not _invalid(entry)]
        self.refused += len(refused)
        response = dict(self._sqs.send_message_batch(QueueUrl=QueueUrl, Entries=kept)) if kept else {}
        response["Failed"] = list(response.get("Failed", [])) + [
            {"Id": entry["Id"], "Code": "InvalidMessageContents", "SenderFault": True} for entry in refused
        ]
        return response
