"""Count IngestionSuccess / IngestionFailure events from the stage's event audit queue.

Delivery is at least once all the way (EventBridge rule targets, SNS subscriptions, SQS standard
queues may each deliver a message more than once), so events are counted by their id: deliveries
of one event share it. Counts are distinct events per key, and how many deliveries were duplicates.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from functions.common.names import EVENT_AUDIT_STAGE_KEY, EVENT_SOURCE, DetailType, EventDetailField, Output
from stage_client.target import Target, TargetError

# Long enough that one counting pass never sees the same foreign message twice; foreign messages
# (events of keys we are not counting) become visible again for their own verifier afterwards.
FOREIGN_VISIBILITY_SECONDS = 60


class NoEventAuditError(TargetError):
    """The stage deploys no event audit queue, so nothing can count its events."""


def has_event_audit(target: Target) -> bool:
    return target.optional_output(Output.EVENT_AUDIT_QUEUE_URL) is not None


def require_event_audit(target: Target, who: str) -> str:
    """The audit queue's URL, or NoEventAuditError saying that `who` needs it and which stage key
    deploys it (prod leaves it out: docs/performance.md#cost)."""
    url = target.optional_output(Output.EVENT_AUDIT_QUEUE_URL)
    if url is None:
        raise NoEventAuditError(
            f"{who} counts IngestionSuccess/IngestionFailure events on the event audit queue, and stage "
            f"{target.name!r} has none (no {Output.EVENT_AUDIT_QUEUE_URL.value} output: it is deployed with "
            f"{EVENT_AUDIT_STAGE_KEY} false); deploy it with {EVENT_AUDIT_STAGE_KEY} true to count events"
        )
    return url


def event_id_of(event: Mapping[str, Any]) -> str | None:
    """The id every delivery of one outcome carries: the detail's eventId, which the relay derives
    from the outcome (key, status, attempt), so a stream batch handed back and published again, and
    a rule target's or an SNS subscription's duplicate delivery, both repeat it. The EventBridge
    envelope's `id` ("a Version 4 UUID that's generated for every event", EventBridge user guide,
    "Event structure reference", docs.aws.amazon.com/eventbridge/latest/userguide/eb-events-structure.html)
    is new on every PutEvents, so it only stands in for events without a detail eventId.
    """
    detail = event.get("detail")
    value = detail.get(EventDetailField.EVENT_ID.value) if isinstance(detail, Mapping) else None
    value = value or event.get("id")
    return str(value) if value else None


@dataclass(frozen=True)
class AuditEvent:
    """One delivery read from the audit queue."""

    detail_type: str
    key: str
    event_id: str


@dataclass
class EventCounts:
    """Deliveries seen per detail type, idempotency key and event id (only for the keys asked about)."""

    by_type: dict[str, dict[str, Counter[str]]] = field(default_factory=dict)

    def add(self, event: AuditEvent) -> None:
        self.by_type.setdefault(event.detail_type, {}).setdefault(event.key, Counter())[event.event_id] += 1

    def keys_with(self, detail_type: DetailType) -> Counter[str]:
        """Distinct events per key."""
        return Counter({key: len(ids) for key, ids in self.by_type.get(detail_type.value, {}).items()})

    def total(self, detail_type: DetailType) -> int:
        """Distinct events of this type (a duplicate delivery counts once)."""
        return sum(self.keys_with(detail_type).values())

    def deliveries(self, detail_type: DetailType) -> int:
        return sum(sum(ids.values()) for ids in self.by_type.get(detail_type.value, {}).values())

    def duplicate_deliveries(self, detail_type: DetailType | None = None) -> int:
        """Deliveries beyond the first of each event: what at-least-once delivery added."""
        types = [detail_type] if detail_type else [t for t in DetailType if t.value in self.by_type]
        return sum(self.deliveries(t) - self.total(t) for t in types)


def parse_event(body: str) -> AuditEvent | None:
    """The event of an audit message (raw SNS delivery or an SNS envelope); None for anything else."""
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
    event_id = event_id_of(document)
    if not key or not detail_type or not event_id:
        return None
    return AuditEvent(str(detail_type), str(key), event_id)


def collect_events(
    target: Target,
    keys: Collection[str],
    counts: EventCounts | None = None,
    *,
    max_polls: int = 1000,
) -> EventCounts:
    """Read the audit queue until it answers empty; consume (delete) the events of `keys`.

    Deleting what we count makes each delivery counted once across repeated polls (a duplicate
    delivery is another message, counted as such); events of other keys are left for whoever
    counts them.
    """
    queue_url = require_event_audit(target, "counting events")
    sqs = target.client("sqs")
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
            if parsed and parsed.key in wanted:
                counts.add(parsed)
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
    """Collect until `expected` distinct events of `detail_type` arrived, then `settle_s` more.

    Waiting past the expected count is what lets a second event of a key (or a duplicate
    delivery, counted apart) show up instead of being missed by stopping at the first N.
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
