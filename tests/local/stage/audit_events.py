"""The events of given keys read from the stage's event audit queue, with their event ids.

Every delivery of an event is kept (an at-least-once repeat shows as a second delivery of the same
`detail.eventId`). The deliveries of other keys stay hidden for FOREIGN_VISIBILITY_SECONDS, as the
stage client's own counter leaves them (stage_client/audit.py), then return for whoever counts them.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from functions.common.names import EVENT_SOURCE, DetailType, EventDetailField, Output
from stage_client.target import Target

FOREIGN_VISIBILITY_SECONDS = 30


@dataclass
class KeyEvents:
    """Deliveries per key: (detail type, event id, detail)."""

    deliveries: dict[str, list[tuple[str, str, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def event_ids(self, key: str, detail_type: DetailType) -> set[str]:
        return {event_id for kind, event_id, _ in self.deliveries.get(key, []) if kind == detail_type.value}

    def details(self, key: str, detail_type: DetailType) -> list[dict[str, Any]]:
        return [detail for kind, _, detail in self.deliveries.get(key, []) if kind == detail_type.value]


def _event_of(body: str) -> dict[str, Any] | None:
    document: Any = json.loads(body)
    if isinstance(document, dict) and document.get("Type") == "Notification":  # an SNS envelope
        document = json.loads(document["Message"])
    return document if isinstance(document, dict) and document.get("source") == EVENT_SOURCE else None


def read_events(target: Target, keys: Collection[str], events: KeyEvents, *, seconds: float) -> KeyEvents:
    """Read the audit queue for `seconds`, consuming the deliveries of `keys` into `events`."""
    sqs = target.client("sqs")
    queue_url = target.output(Output.EVENT_AUDIT_QUEUE_URL)
    wanted = set(keys)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for message in sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            VisibilityTimeout=FOREIGN_VISIBILITY_SECONDS,
        ).get("Messages", []):
            event = _event_of(message["Body"])
            detail = (event or {}).get("detail") or {}
            key = detail.get(EventDetailField.IDEMPOTENCY_KEY.value)
            if event is not None and key in wanted:
                events.deliveries[key].append(
                    (str(event["detail-type"]), str(detail.get(EventDetailField.EVENT_ID.value)), detail)
                )
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return events


def wait_for_events(
    target: Target, keys: Collection[str], detail_type: DetailType, *, timeout: float, settle: float = 3.0
) -> KeyEvents:
    """Read until every key has an event of `detail_type`, then `settle` seconds more for repeats."""
    events = KeyEvents()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(events.event_ids(key, detail_type) for key in keys):
        read_events(target, keys, events, seconds=1)
    return read_events(target, keys, events, seconds=settle)
