"""Strict JSON parsing and the event schema shared by ingest (reject early) and worker (re-check).

Accepted body: a JSON object with at least
  - "orderId": a non-empty string of at most 128 characters,
  - "amount": a number >= 0 (booleans are not numbers here),
and any other fields. An optional "idempotencyKey" field (or the Idempotency-Key header) carries
a client key matching functions.common.canonical.CLIENT_KEY_PATTERN. The spec's example
{"orderId":"123","amount":42.50} is valid.

Rejected as malformed JSON: duplicate object keys, NaN/Infinity, numbers that overflow or
underflow a double (1e400, 1e-400), integers beyond 2**53 that a double would change (RFC 8785
numbers are IEEE 754 doubles: 9007199254740993 would silently become ...992), integers
of more than 38 digits and numbers outside DynamoDB's range (1E-130..9.99E+125), nesting deeper
than MAX_NESTING_DEPTH, strings that are not valid Unicode (lone surrogates).

Rejected as unsupported characters: text that SQS cannot carry in a message body (UnsupportedTextError).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from functions.common.canonical import (
    DuplicateKeyAfterNormalizationError,
    NotCanonicalizableError,
    canonical_json,
    payload_checksum,
    sha256_hex,
)
from functions.common.names import COMPUTED_KEY_PREFIX

# Deep enough for any realistic order document, shallow enough that no recursive consumer
# (canonical form, DynamoDB marshalling, log formatters) gets near Python's recursion limit.
MAX_NESTING_DEPTH = 32
# DynamoDB numbers: up to 38 significant digits, magnitude 1E-130 .. 9.99...E+125.
DYNAMODB_MAX_DIGITS = 38
DYNAMODB_MAX_MAGNITUDE = 9.9999999999999999999999999999999999999e125
DYNAMODB_MIN_MAGNITUDE = 1e-130
# RFC 8785 section 3.2.2.3: numbers are IEEE 754 doubles, so an integer is exact up to 2**53.
_SAFE_INTEGER = 2**53 - 1
MAX_ORDER_ID_LENGTH = 128
REQUIRED_FIELDS = ("orderId", "amount")


class MalformedJsonError(ValueError):
    """The body is not strict JSON (see the module docstring for what strict means here)."""


class SchemaError(ValueError):
    """The body is strict JSON but not an event this service accepts."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise MalformedJsonError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise MalformedJsonError(f"{name} is not a JSON number")


def _parse_int(text: str) -> int | float:
    digits = text.lstrip("-")
    if len(digits) > DYNAMODB_MAX_DIGITS:
        raise MalformedJsonError(
            f"integer with {len(digits)} digits exceeds DynamoDB's {DYNAMODB_MAX_DIGITS}"
        )
    value = int(text)
    if abs(value) <= _SAFE_INTEGER:
        return value
    # Beyond 2**53 a JSON number is the double nearest to it (RFC 8785). Accept an integer that
    # double holds exactly (10000000000000000 is 1e16) or that is the double's own RFC 8785
    # spelling (the canonical form must parse again); refuse one the double would change
    # (9007199254740993 would silently become ...992 and share its key).
    as_double = float(value)
    spelling = canonical_json(as_double)
    if as_double != value and spelling != str(value):
        raise MalformedJsonError(
            f"integer {text[:40]} cannot be held exactly by a JSON (IEEE 754 double) number: it would be "
            f"read as {spelling}; send that, or the number as a string"
        )
    return as_double


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise MalformedJsonError(f"number {text[:40]} overflows")
    mantissa = text.lower().split("e", 1)[0]
    if value == 0.0 and mantissa.strip("-+0.") != "":
        raise MalformedJsonError(f"number {text[:40]} underflows to 0")
    magnitude = abs(value)
    if magnitude > DYNAMODB_MAX_MAGNITUDE or (magnitude != 0.0 and magnitude < DYNAMODB_MIN_MAGNITUDE):
        raise MalformedJsonError(f"number {text[:40]} is outside DynamoDB's range")
    return value


def exceeds_nesting(value: Any, limit: int = MAX_NESTING_DEPTH) -> bool:
    """Iterative, so that a structure just under the parser's own limit cannot blow the stack here."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            depth += 1
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth) for child in children)
    return False


def parse_strict_json(text: str) -> Any:
    """json.loads with every relaxation of the stdlib parser turned into MalformedJsonError."""
    try:
        value = json.loads(
            text,
            object_pairs_hook=_reject_duplicate_keys,
            parse_constant=_reject_constant,
            parse_int=_parse_int,
            parse_float=_parse_float,
        )
    except RecursionError:
        # The C scanner guards its own recursion: absurd nesting surfaces here, cleanly.
        raise MalformedJsonError(f"nesting deeper than {MAX_NESTING_DEPTH}") from None
    except MalformedJsonError:
        raise
    except ValueError as error:  # json.JSONDecodeError is a ValueError
        raise MalformedJsonError(f"invalid JSON: {error}") from None
    if exceeds_nesting(value):
        raise MalformedJsonError(f"nesting deeper than {MAX_NESTING_DEPTH}")
    return value


def canonical_body(value: Any) -> str:
    """The canonical form, with the Unicode problems it can reveal reported as MalformedJsonError."""
    try:
        text = canonical_json(value)
    except DuplicateKeyAfterNormalizationError as error:
        raise MalformedJsonError(str(error)) from None
    except NotCanonicalizableError:
        # The parser admits no number RFC 8785 refuses, so what is left is text: a lone surrogate.
        raise MalformedJsonError("string is not valid Unicode (lone surrogate)") from None
    unsafe = SQS_UNSAFE_TEXT.search(text)
    if unsafe is not None:
        raise UnsupportedTextError(unsafe.group(), field=field_holding(value, unsafe.group()))
    return text


# The characters an SQS message may hold (SendMessage API reference, MessageBody,
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html):
# #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF. For any other character
# SQS either refuses the message (InvalidMessageContents: a retry can never succeed) or, as later
# versions of that page say, stores U+FFFD in its place (not the payload that was accepted).
# Either way the ingest must refuse it first. JSON escapes the controls below #x20, so in a
# canonical body only U+FFFE and U+FFFF (and refused lone surrogates) can break the rule.
# Written as the complement of that list (every code point it leaves out, up to U+10FFFF, the last
# one): the negated form of the list compiles in ~9 ms (the regex compiler enumerates its large
# ranges), paid at every cold start; this one in under 1 ms. A unit test proves the two forms match
# the same characters (tests/unit/functions/test_payload_fuzz.py).
SQS_UNSAFE_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class UnsupportedTextError(ValueError):
    """Valid JSON whose canonical form holds a character SQS cannot carry (U+FFFE, U+FFFF)."""

    def __init__(self, character: str, *, field: str) -> None:
        super().__init__(f"{field} holds U+{ord(character):04X}, a character SQS messages cannot carry")
        self.field = field


def field_holding(value: Any, character: str) -> str:
    """The path of the first string (or object key) holding the character: $.items[2].name."""
    stack: list[tuple[Any, str]] = [(value, "$")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str) and character in item:
            return path
        if isinstance(item, dict):
            for key in item:
                member = (
                    f"{path}.{key}" if key.isidentifier() and key.isascii() else f"{path}[{json.dumps(key)}]"
                )
                if character in key:
                    return member
                stack.append((item[key], member))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(item))
    return "$"


@dataclass(frozen=True)
class OrderEvent:
    order_id: str
    amount: int | float
    client_key: str | None


def validate_event(value: Any) -> OrderEvent:
    """Check the schema of an already strictly parsed body."""
    if not isinstance(value, dict):
        raise SchemaError(f"body must be a JSON object, got {type(value).__name__}")
    missing = [name for name in REQUIRED_FIELDS if name not in value]
    if missing:
        raise SchemaError(f"missing required field(s): {', '.join(missing)}", field=missing[0])
    order_id = value["orderId"]
    if not isinstance(order_id, str) or not order_id.strip():
        raise SchemaError("orderId must be a non-empty string", field="orderId")
    if len(order_id) > MAX_ORDER_ID_LENGTH:
        raise SchemaError(f"orderId longer than {MAX_ORDER_ID_LENGTH} characters", field="orderId")
    amount = value["amount"]
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise SchemaError("amount must be a number", field="amount")
    if amount < 0:
        raise SchemaError("amount must be >= 0", field="amount")
    client_key = value.get("idempotencyKey")
    if client_key is not None and not isinstance(client_key, str):
        raise SchemaError("idempotencyKey must be a string", field="idempotencyKey")
    return OrderEvent(order_id=order_id, amount=amount, client_key=client_key)


@dataclass(frozen=True)
class ReceivedBody:
    """A message body as the worker sees it: strictly parsed once, with the checksum of its payload."""

    value: Any
    error: str | None
    checksum: str

    @classmethod
    def parse(cls, text: str) -> ReceivedBody:
        try:
            value = parse_strict_json(text)
            return cls(value, None, payload_checksum(value))
        except (MalformedJsonError, DuplicateKeyAfterNormalizationError, NotCanonicalizableError) as error:
            # Not a payload the ingest would send: the raw text is what identifies it.
            return cls(None, str(error), COMPUTED_KEY_PREFIX + sha256_hex(text))
