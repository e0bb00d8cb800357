"""Count IngestionSuccess / IngestionFailure events from the stage's event audit queue."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from functions.common.names import EVENT_SOURCE, DetailType, Output
from stage_client.target import Target

# Long enough that one counting pass never sees the same foreign message twice; foreign messages
# (events of keys we are not counting) become visible again for their own verifier afterwards.
FOREIGN_VISIBILITY_SECONDS = 60


@dataclass
class EventCounts:
    """Events seen per idempotency key and detail type (only for the keys asked about)."""

    by_type: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, detail_type: str, key: str) -> None:
        self.by_type.setdefault(detail_type, Counter())[key] += 1

    def total(self, detail_type: DetailType) -> int:
        return sum(self.by_type.get(detail_type.value, Counter()).values())

    def keys_with(self, detail_type: DetailType) -> Counter[str]:
        return self.by_type.get(detail_type.value, Counter())


def parse_event(body: str) -> tuple[str, str] | None:
    """(detail type, idempotency key) of an audit message: raw SNS delivery or an SNS envelope."""
    try:
        document: Any = json.loads(body)
        if isinstance(document, dict) and document.get("Type") == "Notification":
            document = json.loads(document["Message"])
    except (json.JSONDecodeError, KeyError, TypeError):
        return None
    if not isinstance(document, dict) or document.get("source") != EVENT_SOURCE:
        return None
    detail = document.get("detail") or {}
    key = detail.get("idempotencyKey") if isinstance(detail, dict) else None
    detail_type = document.get("detail-type")
    if not key or not detail_type:
        return None
    return str(detail_type), str(key)


def collect_events(
    target: Target,
    keys: Collection[str],
    counts: EventCounts | None = None,
    *,
    max_polls: int = 1000,
) -> EventCounts:
    """Read the audit queue until it answers empty; consume (delete) the events of `keys`.

    Deleting what we count makes each event counted once across repeated polls; events of other
    keys are left for whoever counts them.
    """
    sqs = target.client("sqs")
    queue_url = target.output(Output.EVENT_AUDIT_QUEUE_URL)
    wanted = set(keys)
    counts = counts if counts is not None else EventCounts()
    for _ in range(max_polls):
        messages = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            VisibilityTimeout=FOREIGN_VISIBILITY_SECONDS,
        ).get("Messages", [])
        if not messages:
            break
        mine: list[dict[str, str]] = []
        for message in messages:
            parsed = parse_event(message["Body"])
            if parsed and parsed[1] in wanted:
                counts.add(*parsed)
                mine.append({"Id": str(len(mine)), "ReceiptHandle": message["ReceiptHandle"]})
        if mine:
            sqs.delete_message_batch(QueueUrl=queue_url, Entries=mine)
    return counts


def wait_for_events(
    target: Target,
    keys: Collection[str],
    detail_type: DetailType,
    expected: int,
    *,
    timeout_s: float,
    settle_s: float = 3.0,
    counts: EventCounts | None = None,
) -> EventCounts:
    """Collect until `expected` events of `detail_type` arrived, then `settle_s` more for extras.

    Waiting past the expected count is what lets a duplicate event show up instead of being
    missed by stopping at the first N.
    """
    counts = counts if counts is not None else EventCounts()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        collect_events(target, keys, counts)
        if counts.total(detail_type) >= expected:
            break
        time.sleep(0.5)
    settle_until = min(deadline, time.monotonic() + settle_s)
    while time.monotonic() < settle_until:
        collect_events(target, keys, counts)
        time.sleep(0.5)
    return counts
