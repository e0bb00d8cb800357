"""Accept one POST /events request: decode, validate, stamp the idempotency key, publish to SQS.

The event schema and the strictness rules are in functions.common.payload. Size limit: the
smallest hop is an SQS message (or an EventBridge entry): 262,144 bytes (256 KiB) including the
message attributes. MAX_BODY_BYTES defaults to 256,000 bytes, which leaves 6,144 bytes for the
attributes that ingest (key, submittedAt, errorTypeCandidate) and redrive (redriveCount,
redriveJobId) add; both the request body and the canonical message body must fit it.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.common.canonical import computed_key_for_text, is_valid_client_key, payload_checksum
from functions.common.failure_mode import FailureModeReader
from functions.common.names import (
    COMPUTED_KEY_PREFIX,
    IDEMPOTENCY_KEY_HEADER,
    ErrorType,
    FailureMode,
    MessageAttribute,
    MetricName,
)
from functions.common.observability import count, fields, logger
from functions.common.payload import (
    MalformedJsonError,
    SchemaError,
    UnsupportedTextError,
    canonical_body,
    parse_strict_json,
    validate_event,
)
from functions.common.state_table import StateTable, checksums_conflict, iso

DEFAULT_MAX_BODY_BYTES = 256_000
SQS_MESSAGE_LIMIT_BYTES = 262_144
NO_ERROR_CANDIDATE = "none"
REPLACEMENT_CHARACTER = "\ufffd"

# The errorType the worker will give a message submitted while a mode is on: a hint that lets an
# operator tell drill traffic from genuine failures in the DLQ.
ERROR_TYPE_CANDIDATE_BY_MODE = {
    FailureMode.POISON_PAYLOAD: ErrorType.SCHEMA_VALIDATION.value,
    FailureMode.SLOW_DOWNSTREAM: ErrorType.TIMEOUT.value,
    FailureMode.RANDOM_FAIL_P30: ErrorType.TRANSIENT.value,
}


class IngestRejected(Exception):
    """A request this service refuses: mapped to a 4xx JSON response by the handler."""

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


class PublishFailed(Exception):
    """SQS did not take the message (an infrastructure problem, not the client's)."""


@dataclass(frozen=True)
class ParsedEvent:
    payload: dict[str, Any]
    message_body: str
    idempotency_key: str
    client_supplied_key: bool
    checksum: str


@dataclass(frozen=True)
class Accepted:
    idempotency_key: str
    message_id: str
    duplicate_message_id: str | None
    error_type_candidate: str


def _is_json_media_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _body_bytes(body: str | None, is_base64_encoded: bool) -> bytes:
    if not body:
        raise IngestRejected(400, "empty_body", "request body is empty")
    if not is_base64_encoded:
        try:
            return body.encode("utf-8")
        except UnicodeEncodeError:
            # A body handed over as text with lone surrogates: its bytes were not UTF-8.
            raise IngestRejected(400, "invalid_utf8", "body is not valid UTF-8") from None
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise IngestRejected(400, "invalid_base64", "body is flagged base64 but does not decode") from None


def _body_text(body: str | None, is_base64_encoded: bool, max_body_bytes: int) -> str:
    raw = _body_bytes(body, is_base64_encoded)
    if len(raw) > max_body_bytes:
        raise IngestRejected(
            413, "payload_too_large", f"body is {len(raw)} bytes; the limit is {max_body_bytes}"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise IngestRejected(400, "invalid_utf8", "body is not valid UTF-8") from None
    if REPLACEMENT_CHARACTER in text:
        # A gateway that decodes a text body before the function sees it puts U+FFFD where the
        # bytes were not UTF-8 (the local API does; tests/local/engine/test_integrations.py), so a
        # raw U+FFFD cannot be told from damage. One that is meant can be sent escaped: \ufffd.
        raise IngestRejected(
            400,
            "invalid_utf8",
            "body holds U+FFFD, the mark of bytes that were not UTF-8; "
            "send it escaped (\\ufffd) if it is meant",
        )
    return text


def _canonical(text: str) -> tuple[Any, str]:
    """The strictly parsed value and its canonical text (the message body)."""
    try:
        value = parse_strict_json(text)
        return value, canonical_body(value)
    except MalformedJsonError as error:
        raise IngestRejected(400, "malformed_json", str(error)) from None
    except UnsupportedTextError as error:
        raise IngestRejected(422, "unsupported_character", str(error), field=error.field) from None


def _client_key(body_key: str | None, header_key: str | None) -> str | None:
    if body_key and header_key and body_key != header_key:
        raise IngestRejected(
            400,
            "invalid_idempotency_key",
            "Idempotency-Key header and body idempotencyKey differ",
            field="idempotencyKey",
        )
    client_key = body_key or header_key
    if client_key is not None and not is_valid_client_key(client_key):
        raise IngestRejected(
            400,
            "invalid_idempotency_key",
            f"idempotencyKey must match ^[A-Za-z0-9_.:-]{{8,128}}$ and not start with "
            f"{COMPUTED_KEY_PREFIX!r} (the namespace of computed keys)",
            field="idempotencyKey",
        )
    return client_key


def parse_request(
    *, body: str | None, is_base64_encoded: bool, headers: Mapping[str, str], max_body_bytes: int
) -> ParsedEvent:
    lowered = {name.lower(): value for name, value in headers.items()}
    if not _is_json_media_type(lowered.get("content-type")):
        raise IngestRejected(415, "unsupported_media_type", "content-type must be application/json")
    value, message_body = _canonical(_body_text(body, is_base64_encoded, max_body_bytes))
    try:
        order = validate_event(value)
    except SchemaError as error:
        raise IngestRejected(422, "schema_violation", str(error), field=error.field) from None
    if len(message_body.encode("utf-8")) > max_body_bytes:
        raise IngestRejected(413, "payload_too_large", f"canonical body exceeds {max_body_bytes} bytes")
    client_key = _client_key(order.client_key, lowered.get(IDEMPOTENCY_KEY_HEADER))
    return ParsedEvent(
        payload=value,
        message_body=message_body,
        # The message body is the canonical text, so its hash is the computed key.
        idempotency_key=client_key or computed_key_for_text(message_body),
        client_supplied_key=client_key is not None,
        checksum=payload_checksum(value),
    )


class IngestService:
    def __init__(
        self,
        *,
        sqs_client: Any,
        queue_url: str,
        failure_modes: FailureModeReader,
        state: StateTable | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sqs = sqs_client
        self._queue_url = queue_url
        self._failure_modes = failure_modes
        # The state table, read to refuse a reused client key early (None: the worker's check only).
        self._state = state
        self._max_body_bytes = max_body_bytes
        self._clock = clock

    def accept(self, *, body: str | None, is_base64_encoded: bool, headers: Mapping[str, str]) -> Accepted:
        parsed = parse_request(
            body=body,
            is_base64_encoded=is_base64_encoded,
            headers=headers,
            max_body_bytes=self._max_body_bytes,
        )
        if parsed.client_supplied_key:
            self._refuse_a_reused_key(parsed)
        mode = self._failure_modes.current().mode
        candidate = ERROR_TYPE_CANDIDATE_BY_MODE.get(mode, NO_ERROR_CANDIDATE)
        message_id = self._send(parsed, candidate)
        duplicate_id = None
        if mode is FailureMode.DUPLICATE_SUBMIT:
            # A client retry storm in miniature: the same key twice, so the worker must dedupe.
            duplicate_id = self._send(parsed, candidate)
        return Accepted(parsed.idempotency_key, message_id, duplicate_id, candidate)

    def _refuse_a_reused_key(self, parsed: ParsedEvent) -> None:
        """409 when the key's record holds another payload's checksum: the client learns it now.

        Only client keys can conflict (a computed key is the payload's hash). An early warning, not
        the guarantee: two concurrent requests both pass it, and the worker compares the checksums
        in its conditional write. So an unreadable table lets the request through, never a 5xx, and
        so does one that does not answer: the read has a budget of its own (the handler builds its
        client with functions.common.clients.OPTIONAL_READ_CONFIG), far inside the ingest's timeout.
        """
        if self._state is None:
            return
        try:
            stored = self._state.checksum_of(parsed.idempotency_key)
        except (ClientError, BotoCoreError) as error:
            logger.warning(
                "conflict check skipped: state table unreadable",
                extra=fields(IDEMPOTENCY_KEY=parsed.idempotency_key, REASON=str(error)),
            )
            return
        if checksums_conflict(stored, parsed.checksum):
            count(MetricName.IDEMPOTENCY_CONFLICTS)
            raise IngestRejected(
                409,
                "idempotency_conflict",
                f"idempotencyKey {parsed.idempotency_key} was already used with another payload; "
                "use a new key for a new order",
                field="idempotencyKey",
            )

    def _send(self, parsed: ParsedEvent, candidate: str) -> str:
        attributes = {
            MessageAttribute.IDEMPOTENCY_KEY.value: parsed.idempotency_key,
            MessageAttribute.SUBMITTED_AT.value: iso(self._clock()),
            MessageAttribute.ERROR_TYPE_CANDIDATE.value: candidate,
        }
        try:
            response = self._sqs.send_message(
                QueueUrl=self._queue_url,
                MessageBody=parsed.message_body,
                MessageAttributes={
                    name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
                },
            )
        except (ClientError, BotoCoreError) as error:
            raise PublishFailed(str(error)) from error
        return str(response["MessageId"])
