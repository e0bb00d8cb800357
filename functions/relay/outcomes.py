"""Which changes of the state table are outcomes, and the event each outcome publishes.

An outcome is a record leaving INFLIGHT for SUCCEEDED or FAILED: the worker's finishing write,
conditioned on the attempt that holds the lease, so each attempt settles at most once. Every other
change (a key taken INFLIGHT, an error annotated, a redrive mark, a TTL deletion) is not one.

The relay's event source mapping passes only outcomes (OUTCOME_FILTER_PATTERN, Lambda event
filtering), and the relay checks every record again: a mapping without the filter, or an engine
that ignores it, still publishes nothing else.
"""

from __future__ import annotations

from typing import Any

from functions.common.events import Event, event_detail, event_id_for
from functions.common.names import DetailType, RecordStatus
from functions.common.state_table import StateRecord

OUTCOMES: dict[RecordStatus, DetailType] = {
    RecordStatus.SUCCEEDED: DetailType.SUCCESS,
    RecordStatus.FAILED: DetailType.FAILURE,
}

# Lambda event filtering on a DynamoDB stream (AWS Lambda Developer Guide, "Using event filtering
# with a DynamoDB event source": DynamoDB mappings filter on the `dynamodb` key only, and attribute
# values are matched in their typed form {"S": [...]}). Both images present means a MODIFY.
OUTCOME_FILTER_PATTERN: dict[str, Any] = {
    "dynamodb": {
        "OldImage": {"status": {"S": [RecordStatus.INFLIGHT.value]}},
        "NewImage": {"status": {"S": [status.value for status in OUTCOMES]}},
    }
}


def sequence_number(record: dict[str, Any]) -> str:
    """The stream record's id for a partial batch response (itemIdentifier)."""
    return str(record["dynamodb"]["SequenceNumber"])


def outcome_event(record: dict[str, Any]) -> Event | None:
    """The event of a stream record that is an outcome; None for any other change."""
    change = record.get("dynamodb") or {}
    old = StateRecord.from_item(change.get("OldImage") or {})
    new = StateRecord.from_item(change.get("NewImage") or {})
    if old.status is not RecordStatus.INFLIGHT or new.status not in OUTCOMES:
        return None
    failed = new.status is RecordStatus.FAILED
    return Event(
        OUTCOMES[new.status],
        event_detail(
            EVENT_ID=event_id_for(
                new.idempotency_key, new.status.value, f"{new.first_seen_at}/{new.attempts}"
            ),
            IDEMPOTENCY_KEY=new.idempotency_key,
            MESSAGE_ID=new.message_id,
            STATUS=new.status.value,
            ERROR_TYPE=new.error_type if failed else None,
            ATTEMPTS=new.attempts,
            PROCESSED_AT=new.updated_at if failed else new.processed_at,
        ),
    )
