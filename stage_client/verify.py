"""The ingestion invariants for a set of idempotency keys (lab verify, drills, the load-test gate)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from functions.common.names import STATE_TABLE_PARTITION_KEY, DetailType, Output, RecordStatus
from stage_client.audit import EventCounts, collect_events, require_event_audit, wait_for_events
from stage_client.target import Target

BATCH_GET_LIMIT = 100
POLL_INTERVAL_S = 1.0
_DESERIALIZER = TypeDeserializer()


@dataclass
class VerifyReport:
    """Records == unique keys, every key SUCCEEDED (one record per key by construction of the
    table's primary key) and, when counted, exactly one distinct IngestionSuccess event per key.

    Events are counted by event id (stage_client.audit.event_id_of): a delivery repeated by
    at-least-once delivery counts once, and is reported as a figure (duplicate_deliveries), never as
    a failure; a key with two distinct success events is one (duplicate_events).
    """

    expected: int
    succeeded: int
    missing: list[str]
    not_succeeded: dict[str, str]
    success_events: int | None
    ok: bool
    duplicate_events: dict[str, int] = field(default_factory=dict)
    duplicate_deliveries: int | None = None
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        parts = [f"{self.succeeded}/{self.expected} SUCCEEDED"]
        if self.missing:
            parts.append(f"{len(self.missing)} missing")
        if self.not_succeeded:
            parts.append(f"{len(self.not_succeeded)} not SUCCEEDED")
        if self.success_events is not None:
            parts.append(f"{self.success_events} distinct success events")
        if self.duplicate_events:
            parts.append(f"{len(self.duplicate_events)} keys with more than one success event")
        if self.duplicate_deliveries:
            parts.append(f"{self.duplicate_deliveries} duplicate deliveries (counted once)")
        return ("PASS: " if self.ok else "FAIL: ") + ", ".join(parts)


def fetch_statuses(target: Target, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The state record of each key that has one (BatchGetItem, 100 keys per call)."""
    dynamodb = target.client("dynamodb")
    table = target.output(Output.TABLE_NAME)
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(list(dict.fromkeys(keys)), BATCH_GET_LIMIT):
        request: dict[str, Any] = {
            table: {
                "Keys": [{STATE_TABLE_PARTITION_KEY: {"S": key}} for key in chunk],
                "ConsistentRead": True,
            }
        }
        for attempt in range(10):
            response = dynamodb.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(table, []):
                found[item[STATE_TABLE_PARTITION_KEY]["S"]] = _plain(item)
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
            time.sleep(min(2.0, 0.05 * 2**attempt))
    return found


def verify_keys(
    target: Target,
    keys: Collection[str],
    *,
    timeout_s: float = 120.0,
    count_events: bool = False,
    on_progress: Callable[[str], None] | None = None,
    counts: EventCounts | None = None,
) -> VerifyReport:
    """Poll until every key is SUCCEEDED or the timeout passes, then report the invariants.

    `counts` carries events a caller already consumed from the audit queue for these keys (a
    drill that watched failure events on the way), so none is lost to the final count. Counting
    events on a stage without the event audit queue fails at once (NoEventAuditError), before any wait.
    """
    if count_events:
        require_event_audit(target, "verifying with --count-events")
    run = _Verification(
        target=target,
        keys=list(dict.fromkeys(keys)),
        timeout_s=timeout_s,
        count_events=count_events,
        counts=counts if counts is not None else EventCounts(),
        on_progress=on_progress,
    )
    records = run.wait_for_records()
    success_events, duplicates = run.success_events(records) if count_events else (None, {})
    return run.report(records, success_events, duplicates)


@dataclass
class _Verification:
    """One verify_keys call: its keys, deadline and the events counted on the way."""

    target: Target
    keys: list[str]
    timeout_s: float
    count_events: bool
    counts: EventCounts
    on_progress: Callable[[str], None] | None
    started: float = field(default_factory=time.monotonic)

    @property
    def deadline(self) -> float:
        return self.started + self.timeout_s

    def wait_for_records(self) -> dict[str, dict[str, Any]]:
        while True:
            records = fetch_statuses(self.target, self.keys)
            if self.count_events:
                # Draining as we go keeps the audit queue short while a big run settles.
                collect_events(self.target, self.keys, self.counts)
            succeeded = _succeeded(records)
            if self.on_progress:
                self.on_progress(self._progress(records, succeeded))
            if succeeded == len(self.keys) or time.monotonic() >= self.deadline:
                return records
            time.sleep(POLL_INTERVAL_S)

    def _progress(self, records: dict[str, dict[str, Any]], succeeded: int) -> str:
        events = f", {self.counts.total(DetailType.SUCCESS)} success events" if self.count_events else ""
        without = len(self.keys) - len(records)
        return (
            f"{succeeded}/{len(self.keys)} SUCCEEDED, {without} without a record{events}"
            f" ({time.monotonic() - self.started:.0f}s)"
        )

    def success_events(self, records: dict[str, dict[str, Any]]) -> tuple[int, dict[str, int]]:
        """Distinct IngestionSuccess events of the keys that have a record; the keys that got more
        than one distinct event."""
        # Events trail their records (bus -> topic -> queue): give them a few seconds at least.
        remaining = max(min(5.0, self.timeout_s), self.deadline - time.monotonic())
        wait_for_events(
            self.target,
            self.keys,
            DetailType.SUCCESS,
            len(self.keys),
            timeout_s=remaining,
            counts=self.counts,
        )
        per_key = self.counts.keys_with(DetailType.SUCCESS)
        total = sum(count for key, count in per_key.items() if key in records)
        return total, {key: count for key, count in per_key.items() if count > 1}

    def report(
        self, records: dict[str, dict[str, Any]], success_events: int | None, duplicates: dict[str, int]
    ) -> VerifyReport:
        missing = [key for key in self.keys if key not in records]
        not_succeeded = {
            key: str(record.get("status"))
            for key, record in records.items()
            if record.get("status") != RecordStatus.SUCCEEDED.value
        }
        events_ok = success_events is None or (success_events == len(self.keys) and not duplicates)
        return VerifyReport(
            expected=len(self.keys),
            succeeded=len(records) - len(not_succeeded),
            missing=missing,
            not_succeeded=not_succeeded,
            success_events=success_events,
            ok=not missing and not not_succeeded and events_ok,
            duplicate_events=duplicates,
            duplicate_deliveries=self.counts.duplicate_deliveries() if self.count_events else None,
            elapsed_s=round(time.monotonic() - self.started, 1),
        )


def _succeeded(records: dict[str, dict[str, Any]]) -> int:
    return sum(1 for r in records.values() if r.get("status") == RecordStatus.SUCCEEDED.value)


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    """A typed DynamoDB item as JSON-friendly values (numbers as int or float, not Decimal)."""
    return {name: _jsonable(_DESERIALIZER.deserialize(typed)) for name, typed in item.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_jsonable(v) for v in value]
    return value
