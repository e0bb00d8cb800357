"""The ingestion invariants for a set of idempotency keys (lab verify, drills, the load-test gate)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from functions.common.names import STATE_TABLE_PARTITION_KEY, DetailType, Output, RecordStatus
from stage_client.audit import EventCounts, collect_events, wait_for_events
from stage_client.target import Target

BATCH_GET_LIMIT = 100
POLL_INTERVAL_S = 1.0
_DESERIALIZER = TypeDeserializer()


@dataclass
class VerifyReport:
    """Records == unique keys, every key SUCCEEDED (one record per key by construction of the
    table's primary key) and, when counted, exactly one IngestionSuccess event per key."""

    expected: int
    succeeded: int
    missing: list[str]
    not_succeeded: dict[str, str]
    success_events: int | None
    ok: bool
    duplicate_events: dict[str, int] = field(default_factory=dict)
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
            parts.append(f"{self.success_events} success events")
        if self.duplicate_events:
            parts.append(f"{len(self.duplicate_events)} keys with duplicate events")
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
    drill that watched failure events on the way), so none is lost to the final count.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    unique = list(dict.fromkeys(keys))
    counts = counts if counts is not None else EventCounts()
    records: dict[str, dict[str, Any]] = {}
    while True:
        records = fetch_statuses(target, unique)
        succeeded = sum(1 for r in records.values() if r.get("status") == RecordStatus.SUCCEEDED.value)
        if count_events:
            # Draining as we go keeps the audit queue short while a big run settles.
            collect_events(target, unique, counts)
        if on_progress:
            events = f", {counts.total(DetailType.SUCCESS)} success events" if count_events else ""
            on_progress(
                f"{succeeded}/{len(unique)} SUCCEEDED, {len(unique) - len(records)} without a record{events}"
                f" ({time.monotonic() - started:.0f}s)"
            )
        if succeeded == len(unique) or time.monotonic() >= deadline:
            break
        time.sleep(POLL_INTERVAL_S)
    success_events: int | None = None
    duplicates: dict[str, int] = {}
    if count_events:
        # Events trail their records (bus -> topic -> queue): give them a few seconds at least.
        remaining = max(min(5.0, timeout_s), deadline - time.monotonic())
        wait_for_events(target, unique, DetailType.SUCCESS, len(unique), timeout_s=remaining, counts=counts)
        per_key = counts.keys_with(DetailType.SUCCESS)
        success_events = sum(count for key, count in per_key.items() if key in records)
        duplicates = {key: count for key, count in per_key.items() if count > 1}
    missing = [key for key in unique if key not in records]
    not_succeeded = {
        key: str(record.get("status"))
        for key, record in records.items()
        if record.get("status") != RecordStatus.SUCCEEDED.value
    }
    succeeded = len(records) - len(not_succeeded)
    ok = not missing and not not_succeeded and (success_events is None or success_events == len(unique))
    return VerifyReport(
        expected=len(unique),
        succeeded=succeeded,
        missing=missing,
        not_succeeded=not_succeeded,
        success_events=success_events,
        ok=ok,
        duplicate_events=duplicates,
        elapsed_s=round(time.monotonic() - started, 1),
    )


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
