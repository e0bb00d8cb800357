"""Canonical JSON form of a payload and the idempotency key (SHA-256) derived from it."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import Any

# A client-supplied idempotency key: 8 to 128 characters of letters, digits and _ . : -
# (long enough to be unique, short enough for a DynamoDB key and an SQS attribute; no
# characters that need escaping in logs, URLs or Logs Insights queries).
CLIENT_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")


class DuplicateKeyAfterNormalizationError(ValueError):
    """Two object keys become the same string once NFC-normalized."""


def _normalize(value: Any) -> Any:
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, dict):
        normalized: dict[str, Any] = {}
        for key, item in value.items():
            nfc_key = unicodedata.normalize("NFC", key)
            if nfc_key in normalized:
                raise DuplicateKeyAfterNormalizationError(
                    f"duplicate key after NFC normalization: {nfc_key!r}"
                )
            normalized[nfc_key] = _normalize(item)
        return normalized
    if isinstance(value, list):
        return [_normalize(item) for item in value]
    return value


def canonical_json(value: Any) -> str:
    """NFC strings (keys too), sorted keys, compact separators, UTF-8 text rather than \\u escapes.

    Written by hand instead of using the rfc8785 package: the Lambda code asset carries only
    functions/ (the runtime offers Powertools and boto3), and the stdlib encoder gives the same
    properties the key needs (stable order and spelling). It differs from RFC 8785 in two
    documented ways: keys sort by code point (not UTF-16 units) and floats print as Python's
    shortest repr; the payload parser (functions.common.payload) turns integral floats into ints
    so that 42 and 42.0 give one key.
    """
    return json.dumps(
        _normalize(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def idempotency_key_for(value: Any) -> str:
    """The key the ingest stamps when the client gives none: SHA-256 of the canonical form."""
    return sha256_hex(canonical_json(value))


def is_valid_client_key(key: str) -> bool:
    return CLIENT_KEY_PATTERN.fullmatch(key) is not None
