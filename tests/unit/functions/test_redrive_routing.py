"""The redrive's routing decision (pure) and the typed records it reads: one rule for preview and move."""

from __future__ import annotations

from typing import Any

import pytest

from functions.common.names import ErrorType, MessageAttribute, RecordStatus
from functions.common.state_table import StateRecord
from functions.redrive.dlq import DlqMessage
from functions.redrive.params import RedriveParams
from functions.redrive.routing import Route, RoutingPolicy

NOW = 1_800_000_000.0


def message(*, age: float = 120, redrive_count: int = 0, key: str | None = "k-1") -> DlqMessage:
    attributes: dict[str, Any] = {}
    if key:
        attributes[MessageAttribute.IDEMPOTENCY_KEY.value] = {"DataType": "String", "StringValue": key}
    if redrive_count:
        attributes[MessageAttribute.REDRIVE_COUNT.value] = {
            "DataType": "Number",
            "StringValue": str(redrive_count),
        }
    return DlqMessage.from_sqs(
        {
            "MessageId": "m-1",
            "ReceiptHandle": "r-1",
            "Body": "{}",
            "MessageAttributes": attributes,
            "Attributes": {"SentTimestamp": str(int((NOW - age) * 1000)), "ApproximateReceiveCount": "5"},
        }
    )


TRANSIENT = ErrorType.TRANSIENT.value
SCHEMA = ErrorType.SCHEMA_VALIDATION.value


@pytest.mark.parametrize(
    ("params", "dlq_message", "error_type", "route"),
    [
        pytest.param(RedriveParams(max_messages=10), message(), SCHEMA, Route.MAIN, id="no filter"),
        pytest.param(
            RedriveParams(max_messages=10), message(), None, Route.MAIN, id="no filter, no error type"
        ),
        pytest.param(
            RedriveParams(max_messages=10, min_age_seconds=300),
            message(age=120),
            SCHEMA,
            Route.SKIP,
            id="too young",
        ),
        pytest.param(
            RedriveParams(max_messages=10, min_age_seconds=60),
            message(age=120),
            SCHEMA,
            Route.MAIN,
            id="old enough",
        ),
        pytest.param(
            RedriveParams(max_messages=10, filter_error_types=frozenset({TRANSIENT})),
            message(),
            SCHEMA,
            Route.SKIP,
            id="other error type",
        ),
        pytest.param(
            RedriveParams(max_messages=10, filter_error_types=frozenset({TRANSIENT})),
            message(),
            TRANSIENT,
            Route.MAIN,
            id="wanted error type",
        ),
        pytest.param(
            RedriveParams(max_messages=10),
            message(redrive_count=3),
            SCHEMA,
            Route.QUARANTINE,
            id="at the limit",
        ),
        pytest.param(
            RedriveParams(max_messages=10, filter_error_types=frozenset({TRANSIENT})),
            message(redrive_count=3),
            SCHEMA,
            Route.SKIP,
            id="at the limit but filtered out",
        ),
    ],
)
def test_route(params: RedriveParams, dlq_message: DlqMessage, error_type: str | None, route: Route) -> None:
    assert RoutingPolicy(params, max_redrives_per_message=3).route(dlq_message, error_type, NOW) is route


def test_state_record_is_parsed_once_from_the_item() -> None:
    record = StateRecord.from_item(
        {
            "idempotencyKey": {"S": "k-1"},
            "status": {"S": "SUCCEEDED"},
            "attempts": {"N": "2"},
            "redriveCount": {"N": "1"},
            "inflightUntil": {"N": "1800000030"},
            "eventPublished": {"BOOL": False},
            "eventDetail": {"S": '{"idempotencyKey":"k-1"}'},
        }
    )
    assert (record.idempotency_key, record.status, record.attempts, record.redrive_count) == (
        "k-1",
        RecordStatus.SUCCEEDED,
        2,
        1,
    )
    assert record.error_type is None
    # The outbox event belongs to its invocation until that invocation's deadline, then to a redelivery.
    assert record.orphaned_event(NOW) is None
    assert record.orphaned_event(NOW + 31) == {"idempotencyKey": "k-1"}


def test_a_record_with_an_unknown_status_parses_without_one() -> None:
    record = StateRecord.from_item({"idempotencyKey": {"S": "k"}, "status": {"S": "SOMETHING_ELSE"}})
    assert record.status is None
