"""POST /events end to end through the handler: accepted events, the bad-input catalog, failure modes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from functions.common.canonical import idempotency_key_for
from functions.common.names import ErrorType, MessageAttribute
from functions.ingest import handler
from functions.ingest.service import DEFAULT_MAX_BODY_BYTES
from tests.unit.functions.http_events import JSON_HEADERS, http_event


@pytest.fixture
def ingest(stage: Any, lambda_context: Any) -> Iterator[Any]:
    handler.service.cache_clear()

    def call(
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        base64_encode: bool = False,
        flag_only: bool = False,
    ) -> Any:
        event = http_event(
            "POST",
            "/events",
            body=body,
            headers=JSON_HEADERS if headers is None else headers,
            base64_encode=base64_encode,
        )
        if flag_only:
            # A body flagged base64 that is not base64 at all.
            event["isBase64Encoded"] = True
        response = handler.lambda_handler(event, lambda_context)
        return response["statusCode"], json.loads(response["body"])

    yield call
    handler.service.cache_clear()


def test_spec_example_is_accepted_with_canonical_key_and_attributes(ingest: Any, stage: Any) -> None:
    status, body = ingest('{"orderId":"123","amount":42.50}')

    assert status == 202
    assert body["idempotencyKey"] == idempotency_key_for({"orderId": "123", "amount": 42.5})
    [message] = stage.receive_all(stage.queue_url)
    assert message["MessageId"] == body["messageId"]
    assert json.loads(message["Body"]) == {"orderId": "123", "amount": 42.5}
    attributes = {name: value["StringValue"] for name, value in message["MessageAttributes"].items()}
    assert attributes[MessageAttribute.IDEMPOTENCY_KEY.value] == body["idempotencyKey"]
    assert attributes[MessageAttribute.ERROR_TYPE_CANDIDATE.value] == "none"
    assert attributes[MessageAttribute.SUBMITTED_AT.value].endswith("Z")


def test_client_key_from_body_or_header_is_used(ingest: Any, stage: Any) -> None:
    status, body = ingest('{"orderId":"1","amount":1,"idempotencyKey":"order-1:v1"}')
    assert (status, body["idempotencyKey"]) == (202, "order-1:v1")
    status, body = ingest(
        '{"orderId":"1","amount":1}', headers={**JSON_HEADERS, "Idempotency-Key": "header-key-1"}
    )
    assert (status, body["idempotencyKey"]) == (202, "header-key-1")


def test_base64_body_with_json_content_type_is_accepted(ingest: Any, stage: Any) -> None:
    status, body = ingest('{"amount": 3, "orderId": "b64"}', base64_encode=True)
    assert status == 202
    assert body["idempotencyKey"] == idempotency_key_for({"orderId": "b64", "amount": 3})


def test_same_payload_in_any_spelling_gives_one_key(ingest: Any) -> None:
    _, first = ingest('{"orderId":"caf\\u00e9","amount":42.0}')
    _, second = ingest('{ "amount" : 42,\n "orderId" : "cafe\u0301" }')
    assert first["idempotencyKey"] == second["idempotencyKey"]


def test_duplicate_submit_mode_sends_the_same_key_twice(ingest: Any, stage: Any) -> None:
    stage.set_failure_mode("duplicate_submit")
    status, body = ingest('{"orderId":"dup","amount":5}')

    assert status == 202
    messages = stage.receive_all(stage.queue_url)
    assert sorted(m["MessageId"] for m in messages) == sorted([body["messageId"], body["duplicateMessageId"]])
    keys = {m["MessageAttributes"][MessageAttribute.IDEMPOTENCY_KEY.value]["StringValue"] for m in messages}
    assert keys == {body["idempotencyKey"]}


def test_error_type_candidate_follows_the_active_mode(ingest: Any, stage: Any) -> None:
    stage.set_failure_mode("poison_payload")
    ingest('{"orderId":"p","amount":5}')
    [message] = stage.receive_all(stage.queue_url)
    candidate = message["MessageAttributes"][MessageAttribute.ERROR_TYPE_CANDIDATE.value]["StringValue"]
    assert candidate == ErrorType.SCHEMA_VALIDATION.value


def test_unknown_failure_mode_is_ignored(ingest: Any, stage: Any) -> None:
    stage.set_failure_mode("set_everything_on_fire")
    status, body = ingest('{"orderId":"u","amount":5}')
    assert status == 202
    assert "duplicateMessageId" not in body
    assert stage.depth(stage.queue_url) == 1


def test_queue_failure_is_a_503_not_a_crash(ingest: Any, stage: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUE_URL", stage.queue_url.replace("ingest-main", "missing-queue"))
    handler.service.cache_clear()
    status, body = ingest('{"orderId":"x","amount":1}')
    assert status == 503
    assert body["error"] == "unavailable"


def _deep(depth: int) -> str:
    return '{"orderId":"d","amount":1,"x":' + "[" * depth + "]" * depth + "}"


TOO_BIG = '{"orderId":"big","amount":1,"pad":"' + "x" * DEFAULT_MAX_BODY_BYTES + '"}'
# Below the raw limit, but \u escapes of a character NFC expands push the canonical form over it.
CANONICAL_TOO_BIG = '{"orderId":"c","amount":1,"pad":"' + "\\u0958" * 43_000 + '"}'

BAD_INPUTS: list[tuple[str, Any, dict[str, str] | None, bool, int, str]] = [
    # (case id, body, headers (None = JSON), base64, expected status, expected error code)
    ("empty body", "", None, False, 400, "empty_body"),
    ("no body", None, None, False, 400, "empty_body"),
    ("null", "null", None, False, 422, "schema_violation"),
    ("array", '[{"orderId":"1","amount":1}]', None, False, 422, "schema_violation"),
    ("string", '"hello"', None, False, 422, "schema_violation"),
    ("number", "42", None, False, 422, "schema_violation"),
    ("malformed", '{"orderId":"1",', None, False, 400, "malformed_json"),
    ("trailing garbage", '{"orderId":"1","amount":1} x', None, False, 400, "malformed_json"),
    ("single quotes", "{'orderId':'1','amount':1}", None, False, 400, "malformed_json"),
    ("NaN", '{"orderId":"1","amount":NaN}', None, False, 400, "malformed_json"),
    ("Infinity", '{"orderId":"1","amount":Infinity}', None, False, 400, "malformed_json"),
    ("-Infinity", '{"orderId":"1","amount":-Infinity}', None, False, 400, "malformed_json"),
    ("float overflow", '{"orderId":"1","amount":1e400}', None, False, 400, "malformed_json"),
    ("beyond DynamoDB range", '{"orderId":"1","amount":1e200}', None, False, 400, "malformed_json"),
    ("39-digit integer", '{"orderId":"1","amount":' + "9" * 39 + "}", None, False, 400, "malformed_json"),
    ("duplicate key", '{"orderId":"1","orderId":"2","amount":1}', None, False, 400, "malformed_json"),
    (
        "duplicate key after NFC",
        '{"orderId":"1","amount":1,"\\u00e9":1,"e\\u0301":2}',
        None,
        False,
        400,
        "malformed_json",
    ),
    ("nesting 33", _deep(32), None, False, 400, "malformed_json"),
    ("nesting 100000", _deep(100_000), None, False, 400, "malformed_json"),
    ("nesting 5000", _deep(5_000), None, False, 400, "malformed_json"),
    ("lone surrogate", '{"orderId":"\\ud800","amount":1}', None, False, 400, "malformed_json"),
    ("missing orderId", '{"amount":1}', None, False, 422, "schema_violation"),
    ("missing amount", '{"orderId":"1"}', None, False, 422, "schema_violation"),
    ("empty orderId", '{"orderId":"  ","amount":1}', None, False, 422, "schema_violation"),
    ("numeric orderId", '{"orderId":123,"amount":1}', None, False, 422, "schema_violation"),
    ("orderId too long", '{"orderId":"' + "o" * 129 + '","amount":1}', None, False, 422, "schema_violation"),
    ("string amount", '{"orderId":"1","amount":"42.50"}', None, False, 422, "schema_violation"),
    ("boolean amount", '{"orderId":"1","amount":true}', None, False, 422, "schema_violation"),
    ("negative amount", '{"orderId":"1","amount":-0.01}', None, False, 422, "schema_violation"),
    (
        "numeric idempotencyKey",
        '{"orderId":"1","amount":1,"idempotencyKey":12345678}',
        None,
        False,
        422,
        "schema_violation",
    ),
    (
        "short idempotencyKey",
        '{"orderId":"1","amount":1,"idempotencyKey":"abc"}',
        None,
        False,
        400,
        "invalid_idempotency_key",
    ),
    (
        "idempotencyKey with space",
        '{"orderId":"1","amount":1,"idempotencyKey":"a b c d e f"}',
        None,
        False,
        400,
        "invalid_idempotency_key",
    ),
    (
        "bad key header",
        '{"orderId":"1","amount":1}',
        {**JSON_HEADERS, "idempotency-key": "k" * 129},
        False,
        400,
        "invalid_idempotency_key",
    ),
    (
        "header and body keys differ",
        '{"orderId":"1","amount":1,"idempotencyKey":"body-key-1"}',
        {**JSON_HEADERS, "idempotency-key": "header-key-1"},
        False,
        400,
        "invalid_idempotency_key",
    ),
    ("too large", TOO_BIG, None, False, 413, "payload_too_large"),
    ("canonical form too large", CANONICAL_TOO_BIG, None, False, 413, "payload_too_large"),
    (
        "text/plain",
        '{"orderId":"1","amount":1}',
        {"content-type": "text/plain"},
        False,
        415,
        "unsupported_media_type",
    ),
    ("no content type", '{"orderId":"1","amount":1}', {}, False, 415, "unsupported_media_type"),
    (
        "form encoded",
        "orderId=1&amount=1",
        {"content-type": "application/x-www-form-urlencoded"},
        True,
        415,
        "unsupported_media_type",
    ),
    ("invalid base64", "%%%not-base64%%%", None, False, 400, "invalid_base64"),
    ("base64 of invalid UTF-8", b'{"orderId":"\xff","amount":1}', None, True, 400, "invalid_utf8"),
]


@pytest.mark.parametrize(
    ("body", "headers", "base64_encode", "status", "code"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUTS],
)
def test_bad_input_is_rejected_and_nothing_is_sent(
    ingest: Any, stage: Any, body: Any, *, headers: Any, base64_encode: bool, status: int, code: str
) -> None:
    actual_status, response = ingest(
        body, headers=headers, base64_encode=base64_encode, flag_only=code == "invalid_base64"
    )

    assert (actual_status, response["error"]) == (status, code)
    assert response["message"]
    assert stage.depth(stage.queue_url) == 0


def test_catalog_is_large_enough() -> None:
    assert len(BAD_INPUTS) >= 20
