"""The ingestion_state table (PK idempotencyKey): the worker's state machine and the redrive's marks.

Every write is a single conditional UpdateItem. The worker's first write is an UpdateItem rather
than the spec's PutItem: it creates the item when absent exactly like a conditional PutItem, but
keeps attempts, firstSeenAt and the redrive's redriveCount across retries (a PutItem would erase
them), and ReturnValuesOnConditionCheckFailure=ALL_OLD still replaces a separate GetItem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from functions.common.names import STATE_TABLE_PARTITION_KEY, STATE_TABLE_TTL_ATTRIBUTE, RecordStatus

_DESERIALIZER = TypeDeserializer()
MAX_ERROR_MESSAGE_LENGTH = 512


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


@dataclass(frozen=True)
class Acquired:
    attempts: int


@dataclass(frozen=True)
class AlreadySucceeded:
    item: dict[str, Any]


@dataclass(frozen=True)
class HeldByAnother:
    item: dict[str, Any]


BeginResult = Acquired | AlreadySucceeded | HeldByAnother


class StateTable:
    def __init__(self, client: Any, table_name: str, *, ttl_days: int) -> None:
        self._client = client
        self._table = table_name
        self._ttl_seconds = ttl_days * 86400

    def _key(self, idempotency_key: str) -> dict[str, Any]:
        return {STATE_TABLE_PARTITION_KEY: {"S": idempotency_key}}

    def begin(self, idempotency_key: str, *, checksum: str, now: float, lease_seconds: float) -> BeginResult:
        """Take the key INFLIGHT if it is absent, FAILED, QUARANTINED or INFLIGHT past its lease."""
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=self._key(idempotency_key),
                UpdateExpression=(
                    "SET #status = :inflight, attempts = if_not_exists(attempts, :zero) + :one, "
                    "checksum = :checksum, firstSeenAt = if_not_exists(firstSeenAt, :nowIso), "
                    "inflightUntil = :until, updatedAt = :nowIso REMOVE errorType, errorMessage"
                ),
                ConditionExpression=(
                    "attribute_not_exists(#pk) OR attribute_not_exists(#status) "
                    "OR #status IN (:failed, :quarantined) OR (#status = :inflight AND inflightUntil < :now)"
                ),
                ExpressionAttributeNames={"#pk": STATE_TABLE_PARTITION_KEY, "#status": "status"},
                ExpressionAttributeValues={
                    ":inflight": {"S": RecordStatus.INFLIGHT.value},
                    ":failed": {"S": RecordStatus.FAILED.value},
                    ":quarantined": {"S": RecordStatus.QUARANTINED.value},
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":checksum": {"S": checksum},
                    ":nowIso": {"S": iso(now)},
                    ":now": {"N": str(int(now))},
                    ":until": {"N": str(math.ceil(now + lease_seconds))},
                },
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not is_conditional_check_failure(error):
                raise
            old = plain_item(error.response.get("Item"))
            if old.get("status") == RecordStatus.SUCCEEDED.value:
                return AlreadySucceeded(old)
            return HeldByAnother(old)
        return Acquired(int(plain_item(response["Attributes"])["attempts"]))

    def succeed(self, idempotency_key: str, *, attempts: int, now: float) -> bool:
        return self._finish(
            idempotency_key,
            attempts=attempts,
            update="SET #status = :status, processedAt = :nowIso, updatedAt = :nowIso, #ttl = :ttl "
            "REMOVE inflightUntil",
            values={":status": {"S": RecordStatus.SUCCEEDED.value}},
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
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(idempotency_key),
                UpdateExpression=update,
                ConditionExpression="#status = :inflight AND attempts = :attempts",
                ExpressionAttributeNames={"#status": "status", "#ttl": STATE_TABLE_TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    **values,
                    ":inflight": {"S": RecordStatus.INFLIGHT.value},
                    ":attempts": {"N": str(attempts)},
                    ":nowIso": {"S": iso(now)},
                    ":ttl": {"N": str(int(now) + self._ttl_seconds)},
                },
            )
        except ClientError as error:
            if is_conditional_check_failure(error):
                return False
            raise
        return True

    # --- used by the redrive function ------------------------------------------------------------
    def get(self, idempotency_key: str) -> dict[str, Any] | None:
        response = self._client.get_item(
            TableName=self._table,
            Key=self._key(idempotency_key),
            ProjectionExpression="#status, errorType, redriveCount, attempts",
            ExpressionAttributeNames={"#status": "status"},
        )
        item = response.get("Item")
        return plain_item(item) if item else None

    def record_redrive(
        self, idempotency_key: str, *, redrive_count: int, job_id: str, now: float, quarantined: bool
    ) -> bool:
        """Record the redrive count (and QUARANTINED); never creates an item nor reopens a SUCCEEDED one."""
        update = "SET redriveCount = :count, lastRedriveJobId = :job, lastRedrivenAt = :nowIso"
        values: dict[str, Any] = {
            ":count": {"N": str(redrive_count)},
            ":job": {"S": job_id},
            ":nowIso": {"S": iso(now)},
        }
        names = {"#pk": STATE_TABLE_PARTITION_KEY}
        condition = "attribute_exists(#pk)"
        if quarantined:
            update += ", #status = :quarantined"
            values[":quarantined"] = {"S": RecordStatus.QUARANTINED.value}
            values[":succeeded"] = {"S": RecordStatus.SUCCEEDED.value}
            names["#status"] = "status"
            # A stray copy of an already processed key must not reopen it for processing.
            condition += " AND #status <> :succeeded"
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(idempotency_key),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if is_conditional_check_failure(error):
                return False
            raise
        return True

    def annotate_error(self, idempotency_key: str, *, attempts: int, error_type: str) -> bool:
        """Name the error an attempt is about to die of, while it still holds the lease."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(idempotency_key),
                UpdateExpression="SET errorType = :errorType",
                ConditionExpression="#status = :inflight AND attempts = :attempts",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":errorType": {"S": error_type},
                    ":inflight": {"S": RecordStatus.INFLIGHT.value},
                    ":attempts": {"N": str(attempts)},
                },
            )
        except ClientError as error:
            if is_conditional_check_failure(error):
                return False
            raise
        return True
