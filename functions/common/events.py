"""IngestionSuccess / IngestionFailure events: their detail, their deterministic id, and PutEvents in
calls of <= 10 entries with FailedEntryCount checked.

The relay (functions/relay) publishes the outcome of every settled record; the worker publishes
only an idempotency conflict, the one outcome that changes no record.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from functions.common.names import EVENT_SOURCE, DeliveryMetricName, DetailType, EventDetailField
from functions.common.observability import count, fields, logger

# PutEvents takes at most 10 entries per call (Amazon EventBridge API Reference, PutEvents).
PUT_EVENTS_MAX_ENTRIES = 10
# Fixed for ever: event ids are UUIDv5 names in this namespace, so the same outcome gets the same
# id in every invocation, container and deployment.
EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:ingestion-lab:events")


def event_id_for(idempotency_key: str, outcome: str, version: str) -> str:
    """The id of one outcome of one key: the same for every publication of that outcome.

    `version` tells the key's outcomes apart: for a settled record its first-seen time and
    attempt number (an attempt settles at most once; a key whose record expired and came back is
    a new record), for a conflict the conflicting message's id.
    """
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, "\n".join((idempotency_key, outcome, version))))


def event_detail(**values: Any) -> dict[str, Any]:
    """Map EventDetailField member names to wire names, leaving out None values:
    event_detail(STATUS="FAILED") -> {"status": "FAILED"}."""
    return {EventDetailField[name].value: value for name, value in values.items() if value is not None}


@dataclass(frozen=True)
class Event:
    detail_type: DetailType
    detail: dict[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.detail[EventDetailField.EVENT_ID.value])

    def entry(self, bus_name: str) -> dict[str, Any]:
        return {
            "Source": EVENT_SOURCE,
            "DetailType": self.detail_type.value,
            "Detail": json.dumps(self.detail, separators=(",", ":")),
            "EventBusName": bus_name,
        }


@dataclass(frozen=True)
class PublishResult:
    """What one publish() did: how many events EventBridge accepted, and the first that it did not.

    Events after a refused one are not sent: whoever retries the refused event retries those too
    (the relay's stream checkpoint), and sending them now would only duplicate them.
    """

    published: int
    first_unpublished: int | None = None
    reason: str | None = None

    @property
    def complete(self) -> bool:
        return self.first_unpublished is None


class EventPublisher:
    """PutEvents in calls of <= 10 entries; refused entries are retried once (throttling and
    internal failures are EventBridge's per-entry errors), then reported.

    A call that fails outright (no response: an outage, a denied call) raises: the caller's
    invocation fails and its event source retries it.
    """

    def __init__(self, client: Any, bus_name: str) -> None:
        self._client = client
        self._bus_name = bus_name

    def publish(self, events: Sequence[Event]) -> PublishResult:
        published = 0
        for start in range(0, len(events), PUT_EVENTS_MAX_ENTRIES):
            chunk = list(range(start, min(start + PUT_EVENTS_MAX_ENTRIES, len(events))))
            refused = self._put(events, chunk)
            if refused:
                refused = self._put(events, sorted(refused))
            published += len(chunk) - len(refused)
            if refused:
                first = min(refused)
                for index, reason in sorted(refused.items()):
                    logger.error(
                        "event not published",
                        extra=fields(
                            DETAIL_TYPE=events[index].detail_type.value,
                            EVENT_ID=events[index].event_id,
                            REASON=reason,
                        ),
                    )
                count(DeliveryMetricName.EVENTS_PUBLISHED, published)
                count(DeliveryMetricName.EVENTS_NOT_PUBLISHED, len(refused))
                return PublishResult(published, first, refused[first])
        count(DeliveryMetricName.EVENTS_PUBLISHED, published)
        return PublishResult(published)

    def _put(self, events: Sequence[Event], indexes: list[int]) -> dict[int, str]:
        """The indexes EventBridge refused, with its error code and message."""
        response = self._client.put_events(Entries=[events[index].entry(self._bus_name) for index in indexes])
        if not response.get("FailedEntryCount"):
            return {}
        return {
            index: f"{result.get('ErrorCode')}: {result.get('ErrorMessage')}"
            for index, result in zip(indexes, response["Entries"], strict=True)
            if "ErrorCode" in result
        }
