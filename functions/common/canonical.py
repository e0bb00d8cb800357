"""The canonical form of a payload (RFC 8785 over NFC text), the keys and the checksum derived from it.

Canonical form: every string (object keys too) NFC-normalized, then serialised per RFC 8785 (JSON
Canonicalization Scheme) by the `rfc8785` package: keys sorted by UTF-16 code units, numbers in
ECMAScript's shortest form (1e16, 10000000000000000 and 1.0E16 are one number), no whitespace,
UTF-8. The NFC step is ours (RFC 8785 does not normalize): two spellings of the same text are
one order, so they must get one key.

Keys live in two namespaces: a computed key is `sha256:<64 hex>` (names.COMPUTED_KEY_PREFIX), a
client key matches CLIENT_KEY_PATTERN and never starts with that prefix (any letter case).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any

import rfc8785

from functions.common.names import COMPUTED_KEY_PREFIX

# A client-supplied idempotency key: 8 to 128 characters of letters, digits and _ . : -
# (long enough to be unique, short enough for a DynamoDB key and an SQS attribute; no
# characters that need escaping in logs, URLs or Logs Insights queries).
CLIENT_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")
# The body field that carries a client key: not part of what the checksum compares, so that the
# same order sent with its key in the header once and in the body once is one order.
CLIENT_KEY_FIELD = "idempotencyKey"


class DuplicateKeyAfterNormalizationError(ValueError):
    """Two object keys become the same string once NFC-normalized."""


class NotCanonicalizableError(ValueError):
    """A value RFC 8785 has no form for (lone surrogates, integers beyond 2**53, NaN)."""


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
    """RFC 8785 text of the NFC-normalized value."""
    try:
        return rfc8785.dumps(_normalize(value)).decode("utf-8")
    except rfc8785.CanonicalizationError as error:
        raise NotCanonicalizableError(str(error)) from None
    except UnicodeEncodeError:
        # rfc8785 0.1.4 sorts object keys by their UTF-16 form, which a lone surrogate cannot take.
        raise NotCanonicalizableError("object key is not valid Unicode (lone surrogate)") from None


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def computed_key_for_text(canonical_text: str) -> str:
    """The computed key of a canonical text (the ingest sends the canonical form as the message body)."""
    return COMPUTED_KEY_PREFIX + sha256_hex(canonical_text)


def idempotency_key_for(value: Any) -> str:
    """The key the ingest stamps when the client gives none: sha256:<hex> of the canonical form."""
    return computed_key_for_text(canonical_json(value))


def payload_checksum(value: Any) -> str:
    """What the worker compares to tell a duplicate from a conflict: the canonical form without the key."""
    if isinstance(value, dict) and CLIENT_KEY_FIELD in value:
        value = {name: item for name, item in value.items() if name != CLIENT_KEY_FIELD}
    return COMPUTED_KEY_PREFIX + sha256_hex(canonical_json(value))


def is_valid_client_key(key: str) -> bool:
    return CLIENT_KEY_PATTERN.fullmatch(key) is not None and not key.lower().startswith(COMPUTED_KEY_PREFIX)
