"""POST /events end to end through the handler: accepted events, the bad-input catalog, failure modes."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from app.config import load_stage_config
from functions.common.canonical import idempotency_key_for, payload_checksum
from functions.common.names import COMPUTED_KEY_PREFIX, ErrorType, MessageAttribute, RecordStatus
from functions.common.payload import parse_strict_json
from functions.ingest import handler
from functions.ingest.service import DEFAULT_MAX_BODY_BYTES
from tests import REPO_ROOT
from tests.unit.functions.http_events import JSON_HEADERS, http_event
from tests.unit.functions.sqs_rules import SqsWithCharacterRule


@pytest.fixture
def sqs(stage: Any, monkeypatch: pytest.MonkeyPatch) -> SqsWithCharacterRule:
    """The ingest's SQS client: moto plus the character rule that SQS enforces and moto does not."""
    wrapped = SqsWithCharacterRule(stage.sqs)
    real_client = handler.client
    monkeypatch.setattr(
        handler, "client", lambda service: wrapped if service == "sqs" else real_client(service)
    )
    return wrapped


@pytest.fixture
def ingest(stage: Any, sqs: SqsWithCharacterRule, lambda_context: Any) -> Iterator[Any]:
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
    # Found by the handler fuzz (issue 11): rfc8785 sorts keys by UTF-16, which a surrogate breaks.
    ("lone surrogate as a key", '{"orderId":"1","amount":1,"\\ud800":0}', None, False, 400, "malformed_json"),
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
    # Issue 11: text handed over with a lone surrogate (bytes that were not UTF-8, decoded lossily).
    ("text body with a lone surrogate", '{"orderId":"\ud800","amount":1}', None, False, 400, "invalid_utf8"),
    # Issue 11: a gateway that decodes the text body lossily leaves U+FFFD where the bytes were not
    # UTF-8 (the local API does: tests/local/engine/test_integrations.py).
    ("raw U+FFFD", '{"orderId":"\ufffd","amount":1}', None, False, 400, "invalid_utf8"),
    # Issue 11: characters SQS cannot carry (SendMessage API reference), escaped or raw.
    (
        "U+FFFF escaped",
        '{"orderId":"1","amount":1,"note":"\\uffff"}',
        None,
        False,
        422,
        "unsupported_character",
    ),
    ("U+FFFE raw", '{"orderId":"1","amount":1,"note":"a\ufffe"}', None, False, 422, "unsupported_character"),
    (
        "U+FFFF in a nested key",
        '{"orderId":"1","amount":1,"items":[{"\\uffff":1}]}',
        None,
        False,
        422,
        "unsupported_character",
    ),
    # Issue 11: RFC 8785 numbers are IEEE 754 doubles.
    ("float underflow", '{"orderId":"1","amount":1e-400}', None, False, 400, "malformed_json"),
    (
        "integer a double changes",
        '{"orderId":"1","amount":9007199254740993}',
        None,
        False,
        400,
        "malformed_json",
    ),
    # Issue 11: computed keys have their own namespace.
    (
        "client key in the computed namespace",
        '{"orderId":"1","amount":1,"idempotencyKey":"sha256:' + "a" * 64 + '"}',
        None,
        False,
        400,
        "invalid_idempotency_key",
    ),
    (
        "header key in the computed namespace",
        '{"orderId":"1","amount":1}',
        {**JSON_HEADERS, "idempotency-key": "SHA256:" + "b" * 64},
        False,
        400,
        "invalid_idempotency_key",
    ),
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


FIELD_OF_BAD_INPUT = {
    "U+FFFF escaped": "$.note",
    "U+FFFE raw": "$.note",
    "U+FFFF in a nested key": '$.items[0]["\\uffff"]',
    "missing amount": "amount",
    "client key in the computed namespace": "idempotencyKey",
}


@pytest.mark.parametrize(
    "case", [case for case in BAD_INPUTS if case[0] in FIELD_OF_BAD_INPUT], ids=lambda c: c[0]
)
def test_a_refusal_names_the_field(ingest: Any, case: tuple[Any, ...]) -> None:
    name, body, headers, base64_encode, status, code = case
    actual_status, response = ingest(body, headers=headers, base64_encode=base64_encode)
    assert (actual_status, response["error"], response["field"]) == (status, code, FIELD_OF_BAD_INPUT[name])


def test_sqs_unsafe_text_never_reaches_sqs(ingest: Any, sqs: SqsWithCharacterRule) -> None:
    """Before the check, SQS refused the send and the client got 503 'retry': a retry never succeeds."""
    for _ in range(2):
        status, body = ingest('{"orderId":"1","amount":1,"note":"\\uffff"}')
        assert (status, body["error"]) == (422, "unsupported_character")
    assert sqs.refused == 0


# --- idempotency keys: namespaces and RFC 8785 (issue 11, items 2 and 4) ---------------------------------
def test_an_escaped_replacement_character_is_accepted(ingest: Any, stage: Any) -> None:
    status, _ = ingest('{"orderId":"\\ufffd","amount":1}')
    assert status == 202
    [message] = stage.receive_all(stage.queue_url)
    assert json.loads(message["Body"])["orderId"] == "\ufffd"


def test_computed_keys_are_namespaced_and_client_keys_are_kept_as_given(ingest: Any) -> None:
    _, computed = ingest('{"orderId":"n-1","amount":1}')
    assert computed["idempotencyKey"].startswith(COMPUTED_KEY_PREFIX)
    assert len(computed["idempotencyKey"]) == len(COMPUTED_KEY_PREFIX) + 64
    # A client key that looks like a bare hash is a client key: it cannot collide with a computed one.
    bare_hash = computed["idempotencyKey"].removeprefix(COMPUTED_KEY_PREFIX)
    status, chosen = ingest(
        '{"orderId":"n-2","amount":2}', headers={**JSON_HEADERS, "idempotency-key": bare_hash}
    )
    assert (status, chosen["idempotencyKey"]) == (202, bare_hash)
    # Nor can a client take another payload's computed key.
    status, refused = ingest(
        '{"orderId":"n-2","amount":2}',
        headers={**JSON_HEADERS, "idempotency-key": computed["idempotencyKey"]},
    )
    assert (status, refused["error"]) == (400, "invalid_idempotency_key")


@pytest.mark.parametrize(
    "spelling",
    [
        '{"orderId":"big","amount":10000000000000000}',
        '{"orderId":"big","amount":1.0E16}',
        '{"amount":1e16,"orderId":"big"}',
    ],
)
def test_one_json_number_gives_one_key(ingest: Any, spelling: str) -> None:
    status, body = ingest(spelling)
    assert (status, body["idempotencyKey"]) == (202, idempotency_key_for({"orderId": "big", "amount": 1e16}))


# --- a reused client key (issue 11, item 1): refused at once when the state table says so ----------------
def record_first_payload(stage: Any, key: str, body: str) -> None:
    stage.dynamodb.put_item(
        TableName=stage.table_name,
        Item={
            "idempotencyKey": {"S": key},
            "status": {"S": RecordStatus.SUCCEEDED.value},
            "checksum": {"S": payload_checksum(parse_strict_json(body))},
        },
    )


def test_a_client_key_reused_with_another_payload_is_a_409(ingest: Any, stage: Any) -> None:
    record_first_payload(stage, "order-77:v1", '{"orderId":"77","amount":10}')

    status, body = ingest('{"orderId":"77","amount":99,"idempotencyKey":"order-77:v1"}')

    assert (status, body["error"], body["field"]) == (409, "idempotency_conflict", "idempotencyKey")
    assert stage.depth(stage.queue_url) == 0
    # The same order again, its key in the body or in the header, is a retry: accepted.
    assert ingest('{"orderId":"77","amount":10,"idempotencyKey":"order-77:v1"}')[0] == 202
    assert (
        ingest('{"orderId":"77","amount":10}', headers={**JSON_HEADERS, "idempotency-key": "order-77:v1"})[0]
        == 202
    )


def test_an_unreadable_state_table_lets_the_request_through(
    ingest: Any, stage: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ingest's read is an early warning; the worker's conditional write is the guarantee."""
    monkeypatch.setenv("TABLE_NAME", "no-such-table")
    handler.service.cache_clear()
    status, _ = ingest('{"orderId":"78","amount":1,"idempotencyKey":"order-78:v1"}')
    assert status == 202


CDK_CONTEXT = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


@contextlib.contextmanager
def endpoint_that_never_answers() -> Iterator[str]:
    """A TCP endpoint on 127.0.0.1 that accepts connections and never answers: a table in trouble."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        server.close()


def test_a_state_table_that_does_not_answer_lets_the_request_through_in_time(
    ingest: Any, stage: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The early-warning read gives up within its own budget, well inside the ingest's timeout (the
    smallest of the stage's environments), so the request is accepted instead of the function
    timing out (API Gateway would answer 5xx)."""
    smallest_timeout = min(
        load_stage_config(CDK_CONTEXT, env).ingest_timeout_seconds for env in ("local", "dev", "prod")
    )
    with endpoint_that_never_answers() as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", url)
        handler.service.cache_clear()
        handler.service()  # the container's clients, built before the request as on a warm start
        started = time.monotonic()
        status, body = ingest('{"orderId":"79","amount":1,"idempotencyKey":"order-79:v1"}')
        elapsed = time.monotonic() - started

    assert status == 202, body
    assert stage.depth(stage.queue_url) == 1
    # What is left of the timeout is the SQS send's (and the runtime's) share.
    assert elapsed < smallest_timeout / 2, f"{elapsed:.1f} s of a {smallest_timeout} s timeout"


def test_catalog_is_large_enough() -> None:
    assert len(BAD_INPUTS) >= 20
