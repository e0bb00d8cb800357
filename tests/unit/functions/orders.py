"""Orders put on the moto main queue as the ingest puts them, and a DynamoDB client that counts calls."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from functions.common.canonical import canonical_json, computed_key_for_text, idempotency_key_for
from functions.common.names import MessageAttribute

WRITE_ACTIONS = frozenset(
    {"put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items"}
)


def order(n: int) -> dict[str, Any]:
    return {"orderId": f"order-{n}", "amount": n}


def send(stage: Any, payload: Any) -> str:
    """Send as the ingest does (key attribute); a non-JSON body goes without one. Returns the key."""
    if isinstance(payload, str):
        stage.sqs.send_message(QueueUrl=stage.queue_url, MessageBody=payload)
        return computed_key_for_text(payload)
    key = idempotency_key_for(payload)
    stage.sqs.send_message(
        QueueUrl=stage.queue_url,
        MessageBody=json.dumps(payload),
        MessageAttributes={
            MessageAttribute.IDEMPOTENCY_KEY.value: {"DataType": "String", "StringValue": key}
        },
    )
    return key


def send_with_key(stage: Any, payload: dict[str, Any], key: str) -> None:
    """As the ingest sends a client-keyed event: the canonical body carries the key field too."""
    stage.sqs.send_message(
        QueueUrl=stage.queue_url,
        MessageBody=canonical_json({**payload, "idempotencyKey": key}),
        MessageAttributes={
            MessageAttribute.IDEMPOTENCY_KEY.value: {"DataType": "String", "StringValue": key}
        },
    )


class CountingClient:
    """A boto3 client that counts the calls made through it, by method name."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attribute(*args, **kwargs)

        return counted

    @property
    def writes(self) -> int:
        return sum(n for name, n in self.calls.items() if name in WRITE_ACTIONS)
