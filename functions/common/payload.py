"""Strict JSON parsing and the event schema shared by ingest (reject early) and worker (re-check).

Accepted body: a JSON object with at least
  - "orderId": a non-empty string of at most 128 characters,
  - "amount": a number >= 0 (booleans are not numbers here),
and any other fields. An optional "idempotencyKey" field (or the Idempotency-Key header) carries
a client key matching functions.common.canonical.CLIENT_KEY_PATTERN. The spec's example
{"orderId":"123","amount":42.50} is valid.

Rejected as malformed JSON: duplicate object keys, NaN/Infinity, numbers that overflow a float,
integers of more than 38 digits and numbers outside DynamoDB's range (1E-130..9.99E+125), nesting
deeper than MAX_NESTING_DEPTH, strings that are not valid Unicode (lone surrogates).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from functions.common.canonical import DuplicateKeyAfterNormalizationError, canonical_json

# Deep enough for any realistic order document, shallow enough that no recursive consumer
# (canonical form, DynamoDB marshalling, log formatters) gets near Python's recursion limit.
MAX_NESTING_DEPTH = 32
# DynamoDB numbers: up to 38 significant digits, magnitude 1E-130 .. 9.99...E+125.
DYNAMODB_MAX_DIGITS = 38
DYNAMODB_MAX_MAGNITUDE = 9.9999999999999999999999999999999999999e125
DYNAMODB_MIN_MAGNITUDE = 1e-130
# Integral floats below this print the same as the int (2**53: every such float is exact).
_EXACT_INTEGRAL_FLOAT = 2.0**53
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


def _parse_int(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > DYNAMODB_MAX_DIGITS:
        raise MalformedJsonError(
            f"integer with {len(digits)} digits exceeds DynamoDB's {DYNAMODB_MAX_DIGITS}"
        )
    return int(text)


def _parse_float(text: str) -> float | int:
    value = float(text)
    if not math.isfinite(value):
        raise MalformedJsonError(f"number {text[:40]} overflows")
    magnitude = abs(value)
    if magnitude > DYNAMODB_MAX_MAGNITUDE or (magnitude != 0.0 and magnitude < DYNAMODB_MIN_MAGNITUDE):
        raise MalformedJsonError(f"number {text[:40]} is outside DynamoDB's range")
    if value.is_integer() and magnitude < _EXACT_INTEGRAL_FLOAT:
        return int(value)
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
        text.encode("utf-8")
    except DuplicateKeyAfterNormalizationError as error:
        raise MalformedJsonError(str(error)) from None
    except UnicodeEncodeError:
        raise MalformedJsonError("string is not valid Unicode (lone surrogate)") from None
    return text


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
