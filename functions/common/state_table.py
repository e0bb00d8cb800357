"""The ingestion_state table (PK idempotencyKey): the worker's state machine and the redrive's marks.

Every write is a single conditional UpdateItem, which DynamoDB applies atomically: of two concurrent
writers only the one whose condition holds succeeds (https://docs.aws.amazon.com/amazondynamodb/
latest/developerguide/WorkingWithItems.html#WorkingWithItems.ConditionalUpdate). The worker's
first write is an UpdateItem rather than the spec's PutItem: it creates the item when absent
exactly like a conditional PutItem, but keeps attempts, firstSeenAt and the redrive's redriveCount
across retries (a PutItem would erase them), and ReturnValuesOnConditionCheckFailure=ALL_OLD still
replaces a separate GetItem.
A key's checksum (functions.common.canonical.payload_checksum) is written by its first attempt and
never changes: a later message with the same key and another checksum is an idempotency conflict
and leaves the record untouched. Every item carries the TTL attribute from its first write on, so a
record whose message never comes back (INFLIGHT for ever) still expires.
A SUCCEEDED item is also the outbox of its success event (eventDetail, eventPublished): see
functions/worker/processor.py.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from functions.common.names import (
    COMPUTED_KEY_PREFIX,
    STATE_TABLE_PARTITION_KEY,
    STATE_TABLE_TTL_ATTRIBUTE,
    RecordStatus,
)

_DESERIALIZER = TypeDeserializer()
MAX_ERROR_MESSAGE_LENGTH = 512
# Checksums carry their algorithm: one written by an earlier algorithm (a bare hex digest) is never
# compared, so a deployment that changes the checksum does not turn redeliveries into conflicts.
CHECKSUM_PREFIX = COMPUTED_KEY_PREFIX


def checksums_conflict(stored: str | None, incoming: str) -> bool:
    return stored is not None and stored.startswith(CHECKSUM_PREFIX) and stored != incoming


def iso(epoch_seconds: float) -> str:
    return (
        datetime.fromtimestamp(epoch_seconds, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _plain(value: Any) -> Any:
    # boto3 deserializes numbers as Decimal; the items here hold counters and epoch seconds only.
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {name: _plain(item) for name, item in value.items()}
    if isinstance(value, list | set):
        return [_plain(item) for item in value]
    return value


def plain_item(item: dict[str, Any] | None) -> dict[str, Any]:
    """A DynamoDB item as JSON-ready Python values (Decimal -> int or float)."""
    return {name: _plain(_DESERIALIZER.deserialize(value)) for name, value in (item or {}).items()}


def is_conditional_check_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _number(value: Any, default: float | None = None) -> float | None:
    return float(value) if isinstance(value, int | float) else default


@dataclass(frozen=True)
class StateRecord:
    """One ingestion_state item, parsed once: what the worker and the redrive know about a key."""

    idempotency_key: str
    status: RecordStatus | None
    attempts: int = 0
    checksum: str | None = None
    error_type: str | None = None
    redrive_count: int = 0
    inflight_until: float | None = None
    event_published: bool | None = None
    event_detail: str | None = None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> StateRecord:
        """From a low-level DynamoDB item (attribute-value form, as the client returns it)."""
        plain = plain_item(item)
        raw_status = plain.get("status")
        error_type = plain.get("errorType")
        checksum = plain.get("checksum")
        detail = plain.get("eventDetail")
        published = plain.get("eventPublished")
        return cls(
            idempotency_key=str(plain.get(STATE_TABLE_PARTITION_KEY, "")),
            status=RecordStatus(raw_status) if raw_status in _STATUSES else None,
            attempts=int(_number(plain.get("attempts"), 0) or 0),
            checksum=checksum if isinstance(checksum, str) else None,
            error_type=error_type if isinstance(error_type, str) and error_type else None,
            redrive_count=int(_number(plain.get("redriveCount"), 0) or 0),
            inflight_until=_number(plain.get("inflightUntil")),
            event_published=published if isinstance(published, bool) else None,
            event_detail=detail if isinstance(detail, str) else None,
        )

    def orphaned_event(self, now: float) -> dict[str, Any] | None:
        """The success event still unpublished after its invocation's deadline (that invocation died)."""
        # Before the deadline the settling invocation may still be about to publish: a duplicate
        # delivered then stays silent, and if that invocation dies its own message comes back
        # (visibility timeout > function timeout), after the deadline, and publishes.
        if self.event_published is not False or self.event_detail is None:
            return None
        if (self.inflight_until or 0) >= now:
            return None
        detail: dict[str, Any] = json.loads(self.event_detail)
        return detail

    def conflicts_with(self, checksum: str) -> bool:
        return checksums_conflict(self.checksum, checksum)

    def lease_is_live(self, now: float) -> bool:
        return self.status is RecordStatus.INFLIGHT and (self.inflight_until or 0) >= now


_STATUSES = {status.value for status in RecordStatus}


@dataclass(frozen=True)
class Acquired:
    attempts: int


@dataclass(frozen=True)
class AlreadySucceeded:
    record: StateRecord


@dataclass(frozen=True)
class HeldByAnother:
    record: StateRecord


@dataclass(frozen=True)
class Conflict:
    """The key's record holds another payload's checksum; the record was not touched."""

    record: StateRecord


BeginResult = Acquired | AlreadySucceeded | HeldByAnother | Conflict


class StateTable:
    def __init__(self, client: Any, table_name: str, *, ttl_days: int) -> None:
        self._client = client
        self._table = table_name
        self._ttl_seconds = ttl_days * 86400

    def _key(self, idempotency_key: str) -> dict[str, Any]:
        return {STATE_TABLE_PARTITION_KEY: {"S": idempotency_key}}

    def begin(self, idempotency_key: str, *, checksum: str, now: float, lease_seconds: float) -> BeginResult:
        """Take the key INFLIGHT if it is absent, FAILED, QUARANTINED or INFLIGHT past its lease,
        and only for the payload it was first taken for (its checksum)."""
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=self._key(idempotency_key),
                UpdateExpression=(
                    "SET #status = :inflight, attempts = if_not_exists(attempts, :zero) + :one, "
                    "checksum = :checksum, firstSeenAt = if_not_exists(firstSeenAt, :nowIso), "
                    "inflightUntil = :until, updatedAt = :nowIso, #ttl = :ttl REMOVE errorType, errorMessage"
                ),
                ConditionExpression=(
                    "(attribute_not_exists(checksum) OR checksum = :checksum "
                    "OR NOT begins_with(checksum, :checksumPrefix)) "
                    "AND (attribute_not_exists(#status) OR #status IN (:failed, :quarantined) "
                    "OR (#status = :inflight AND inflightUntil < :now))"
                ),
                ExpressionAttributeNames={"#status": "status", "#ttl": STATE_TABLE_TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":inflight": {"S": RecordStatus.INFLIGHT.value},
                    ":failed": {"S": RecordStatus.FAILED.value},
                    ":quarantined": {"S": RecordStatus.QUARANTINED.value},
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":checksum": {"S": checksum},
                    ":checksumPrefix": {"S": CHECKSUM_PREFIX},
                    ":nowIso": {"S": iso(now)},
                    ":now": {"N": str(int(now))},
                    ":until": {"N": str(math.ceil(now + lease_seconds))},
                    ":ttl": {"N": str(int(now) + self._ttl_seconds)},
                },
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not is_conditional_check_failure(error):
                raise
            old = StateRecord.from_item(error.response.get("Item") or {})
            if old.conflicts_with(checksum):
                return Conflict(old)
            if old.status is RecordStatus.SUCCEEDED:
                return AlreadySucceeded(old)
            return HeldByAnother(old)
        return Acquired(int(plain_item(response["Attributes"])["attempts"]))

    def succeed(self, idempotency_key: str, *, attempts: int, now: float, event: dict[str, Any]) -> bool:
        """SUCCEEDED with its success event pending; inflightUntil stays: the publisher's deadline."""
        return self._finish(
            idempotency_key,
            attempts=attempts,
            update="SET #status = :status, processedAt = :nowIso, updatedAt = :nowIso, #ttl = :ttl, "
            "eventPublished = :false, eventDetail = :event",
            values={
                ":status": {"S": RecordStatus.SUCCEEDED.value},
                ":false": {"BOOL": False},
                ":event": {"S": json.dumps(event, separators=(",", ":"))},
            },
            now=now,
        )

    def fail(self, idempotency_key: str, *, attempts: int, error_type: str, message: str, now: float) -> bool:
        return self._finish(
            idempotency_key,
            attempts=attempts,
            update="SET #status = :status, errorType = :errorType, errorMessage = :message, "
            "updatedAt = :nowIso, #ttl = :ttl REMOVE inflightUntil",
            values={
                ":status": {"S": RecordStatus.FAILED.value},
                ":errorType": {"S": error_type},
                ":message": {"S": message[:MAX_ERROR_MESSAGE_LENGTH] or error_type},
            },
            now=now,
        )

    def _finish(
        self, idempotency_key: str, *, attempts: int, update: str, values: dict[str, Any], now: float
    ) -> bool:
        """Write the outcome only if this attempt still owns the lease (no stale worker wins)."""
        return self._update_if(
            idempotency_key,
            update=update,
            condition="#status = :inflight AND attempts = :attempts",
            values={
                **values,
                ":inflight": {"S": RecordStatus.INFLIGHT.value},
                ":attempts": {"N": str(attempts)},
                ":nowIso": {"S": iso(now)},
                ":ttl": {"N": str(int(now) + self._ttl_seconds)},
            },
            names={"#ttl": STATE_TABLE_TTL_ATTRIBUTE},
        )

    def claim_orphaned_event(self, idempotency_key: str, *, now: float, lease_seconds: float) -> bool:
        """Become the publisher of an orphaned success event; False when another delivery already did."""
        return self._update_if(
            idempotency_key,
            update="SET inflightUntil = :until",
            condition="#status = :succeeded AND eventPublished = :false AND inflightUntil < :now",
            values={
                ":succeeded": {"S": RecordStatus.SUCCEEDED.value},
                ":false": {"BOOL": False},
                ":now": {"N": str(int(now))},
                ":until": {"N": str(math.ceil(now + lease_seconds))},
            },
        )

    def mark_event_published(self, idempotency_key: str) -> bool:
        return self._update_if(
            idempotency_key,
            update="SET eventPublished = :true REMOVE inflightUntil, eventDetail",
            condition="#status = :succeeded AND eventPublished = :false",
            values={
                ":succeeded": {"S": RecordStatus.SUCCEEDED.value},
                ":true": {"BOOL": True},
                ":false": {"BOOL": False},
            },
        )

    def _update_if(
        self,
        idempotency_key: str,
        *,
        update: str,
        condition: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
    ) -> bool:
        """One conditional UpdateItem; False when the condition did not hold."""
        # DynamoDB refuses a placeholder that the expressions do not use, hence the filter.
        used = {
            placeholder: name
            for placeholder, name in {"#status": "status", **(names or {})}.items()
            if placeholder in update or placeholder in condition
        }
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(idempotency_key),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=used,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if is_conditional_check_failure(error):
                return False
            raise
        return True

    # --- used by the ingest ------------------------------------------------------------------------
    def checksum_of(self, idempotency_key: str) -> str | None:
        """The key's stored checksum (an eventually consistent read: an early warning only)."""
        item = self._client.get_item(
            TableName=self._table, Key=self._key(idempotency_key), ProjectionExpression="checksum"
        ).get("Item")
        return StateRecord.from_item(item).checksum if item else None

    # --- used by the redrive function ------------------------------------------------------------
    def get(self, idempotency_key: str) -> StateRecord | None:
        response = self._client.get_item(
            TableName=self._table,
            Key=self._key(idempotency_key),
            ProjectionExpression="#pk, #status, errorType, redriveCount, attempts, inflightUntil",
            ExpressionAttributeNames={"#pk": STATE_TABLE_PARTITION_KEY, "#status": "status"},
        )
        item = response.get("Item")
        return StateRecord.from_item(item) if item else None

    def record_redrive(self, idempotency_key: str, *, redrive_count: int, job_id: str, now: float) -> bool:
        """Record the redrive count of a key sent back to the main queue; never creates an item."""
        return self._mark_redriven(idempotency_key, redrive_count=redrive_count, job_id=job_id, now=now)

    def quarantine(self, idempotency_key: str, *, redrive_count: int, job_id: str, now: float) -> bool:
        """QUARANTINED with its redrive count; never creates an item, never reopens a SUCCEEDED one and
        never overwrites a live INFLIGHT lease (another copy of the key is being processed)."""
        return self._mark_redriven(
            idempotency_key,
            redrive_count=redrive_count,
            job_id=job_id,
            now=now,
            status_update=(
                ", #status = :quarantined",
                " AND #status <> :succeeded AND (#status <> :inflight OR inflightUntil < :now)",
            ),
            status_values={
                ":quarantined": {"S": RecordStatus.QUARANTINED.value},
                ":succeeded": {"S": RecordStatus.SUCCEEDED.value},
                ":inflight": {"S": RecordStatus.INFLIGHT.value},
                ":now": {"N": str(int(now))},
            },
        )

    def _mark_redriven(
        self,
        idempotency_key: str,
        *,
        redrive_count: int,
        job_id: str,
        now: float,
        status_update: tuple[str, str] = ("", ""),
        status_values: dict[str, Any] | None = None,
    ) -> bool:
        update, condition = status_update
        return self._update_if(
            idempotency_key,
            update="SET redriveCount = :count, lastRedriveJobId = :job, lastRedrivenAt = :nowIso" + update,
            condition="attribute_exists(#pk)" + condition,
            values={
                ":count": {"N": str(redrive_count)},
                ":job": {"S": job_id},
                ":nowIso": {"S": iso(now)},
                **(status_values or {}),
            },
            names={"#pk": STATE_TABLE_PARTITION_KEY},
        )

    def annotate_error(self, idempotency_key: str, *, attempts: int, error_type: str) -> bool:
        """Name the error an attempt is about to die of, while it still holds the lease."""
        return self._update_if(
            idempotency_key,
            update="SET errorType = :errorType",
            condition="#status = :inflight AND attempts = :attempts",
            values={
                ":errorType": {"S": error_type},
                ":inflight": {"S": RecordStatus.INFLIGHT.value},
                ":attempts": {"N": str(attempts)},
            },
        )
