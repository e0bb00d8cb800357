"""IngestionSuccess / IngestionFailure events: collected per batch, sent in PutEvents calls of <= 10."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.common.names import EVENT_SOURCE, DeliveryMetricName, DetailType, EventDetailField
from functions.common.observability import count, logger

PUT_EVENTS_MAX_ENTRIES = 10


def event_detail(**values: Any) -> dict[str, Any]:
    """Map EventDetailField member names to wire names: event_detail(STATUS="FAILED") -> {"status": ...}."""
    return {EventDetailField[name].value: value for name, value in values.items()}


@dataclass(frozen=True)
class PublishOutcome:
    sent: int
    lost: int


class EventBatch:
    """The events of one invocation; publish() never raises (records are already settled)."""

    def __init__(self, client: Any, bus_name: str) -> None:
        self._client = client
        self._bus_name = bus_name
        self._entries: list[dict[str, Any]] = []

    def add(self, detail_type: DetailType, detail: dict[str, Any]) -> None:
        self._entries.append(
            {
                "Source": EVENT_SOURCE,
                "DetailType": detail_type.value,
                "Detail": json.dumps(detail, separators=(",", ":")),
                "EventBusName": self._bus_name,
            }
        )

    def __len__(self) -> int:
        return len(self._entries)

    def publish(self) -> PublishOutcome:
        entries, self._entries = self._entries, []
        sent = lost = 0
        for start in range(0, len(entries), PUT_EVENTS_MAX_ENTRIES):
            chunk = entries[start : start + PUT_EVENTS_MAX_ENTRIES]
            rejected = self._put(chunk)
            if rejected:
                # One retry for throttled or internally failed entries, then the loss is made visible.
                rejected = self._put([entry for entry, _ in rejected])
            for entry, reason in rejected:
                logger.error(
                    "event not published",
                    extra={"detailType": entry["DetailType"], "detail": entry["Detail"], "reason": reason},
                )
            lost += len(rejected)
            sent += len(chunk) - len(rejected)
        if lost:
            count(DeliveryMetricName.EVENTS_NOT_PUBLISHED, lost)
        return PublishOutcome(sent=sent, lost=lost)

    def _put(self, chunk: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str]]:
        """The entries of the chunk that EventBridge did not accept, with the reason."""
        try:
            response = self._client.put_events(Entries=chunk)
        except (ClientError, BotoCoreError) as error:
            return [(entry, str(error)) for entry in chunk]
        if not response.get("FailedEntryCount"):
            return []
        return [
            (entry, f"{result.get('ErrorCode')}: {result.get('ErrorMessage')}")
            for entry, result in zip(chunk, response["Entries"], strict=True)
            if "ErrorCode" in result
        ]
