"""IngestionSuccess / IngestionFailure events: collected per batch, sent in PutEvents calls of <= 10."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.common.names import EVENT_SOURCE, DeliveryMetricName, DetailType, EventDetailField
from functions.common.observability import count, fields, logger

PUT_EVENTS_MAX_ENTRIES = 10


def event_detail(**values: Any) -> dict[str, Any]:
    """Map EventDetailField member names to wire names: event_detail(STATUS="FAILED") -> {"status": ...}."""
    return {EventDetailField[name].value: value for name, value in values.items()}


@dataclass(frozen=True)
class PublishOutcome:
    sent: int
    lost: int


@dataclass(frozen=True)
class _Pending:
    entry: dict[str, Any]
    message_id: str
    on_published: Callable[[], object] | None


class EventBatch:
    """The events of one invocation; publish() never raises (records are already settled)."""

    def __init__(self, client: Any, bus_name: str) -> None:
        self._client = client
        self._bus_name = bus_name
        self._pending: list[_Pending] = []
        self._unpublished: list[str] = []

    def add(
        self,
        detail_type: DetailType,
        detail: dict[str, Any],
        *,
        message_id: str,
        on_published: Callable[[], object] | None = None,
    ) -> None:
        """Queue an event of the record message_id; on_published runs once EventBridge accepted it."""
        entry = {
            "Source": EVENT_SOURCE,
            "DetailType": detail_type.value,
            "Detail": json.dumps(detail, separators=(",", ":")),
            "EventBusName": self._bus_name,
        }
        self._pending.append(_Pending(entry, message_id, on_published))

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def unpublished_message_ids(self) -> list[str]:
        """The records whose event EventBridge refused, over every publish() of this invocation."""
        return list(self._unpublished)

    def publish(self) -> PublishOutcome:
        pending, self._pending = self._pending, []
        sent = lost = 0
        for start in range(0, len(pending), PUT_EVENTS_MAX_ENTRIES):
            chunk = pending[start : start + PUT_EVENTS_MAX_ENTRIES]
            rejected = self._put(chunk)
            if rejected:
                # One retry for throttled or internally failed entries, then the loss is made visible.
                rejected = self._put([item for item, _ in rejected])
            refused = {id(item) for item, _ in rejected}
            for item, reason in rejected:
                logger.error(
                    "event not published",
                    extra=fields(
                        DETAIL_TYPE=item.entry["DetailType"], DETAIL=item.entry["Detail"], REASON=reason
                    ),
                )
                self._unpublished.append(item.message_id)
            _run_concurrently(
                [item.on_published for item in chunk if id(item) not in refused and item.on_published]
            )
            lost += len(rejected)
            sent += len(chunk) - len(rejected)
        if lost:
            count(DeliveryMetricName.EVENTS_NOT_PUBLISHED, lost)
        return PublishOutcome(sent=sent, lost=lost)

    def _put(self, chunk: list[_Pending]) -> list[tuple[_Pending, str]]:
        """The entries of the chunk that EventBridge did not accept, with the reason."""
        try:
            response = self._client.put_events(Entries=[item.entry for item in chunk])
        except (ClientError, BotoCoreError) as error:
            return [(item, str(error)) for item in chunk]
        if not response.get("FailedEntryCount"):
            return []
        return [
            (item, f"{result.get('ErrorCode')}: {result.get('ErrorMessage')}")
            for item, result in zip(chunk, response["Entries"], strict=True)
            if "ErrorCode" in result
        ]


def _run_concurrently(callbacks: list[Callable[[], object]]) -> None:
    """The published-marks of one chunk at once: a kill between PutEvents and the last mark re-sends
    the unmarked events, so the marks take one round trip instead of one per event."""
    if len(callbacks) <= 1:
        for callback in callbacks:
            callback()
        return
    with ThreadPoolExecutor(max_workers=len(callbacks)) as pool:
        for future in [pool.submit(callback) for callback in callbacks]:
            future.result()
