"""Properties of the canonical form and the idempotency key (hypothesis)."""

from __future__ import annotations

import json
import random
import unicodedata
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from functions.common.canonical import canonical_json, idempotency_key_for, is_valid_client_key
from functions.common.payload import MalformedJsonError, canonical_body, parse_strict_json

# Text that survives a JSON round trip (no lone surrogates).
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
numbers = st.integers(min_value=-(10**30), max_value=10**30) | st.floats(
    allow_nan=False, allow_infinity=False, min_value=-1e100, max_value=1e100
).filter(lambda value: value == 0 or abs(value) > 1e-100)
scalars = st.none() | st.booleans() | numbers | text
documents = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=20,
)
objects = st.dictionaries(text, documents, min_size=1, max_size=6)


def _nfd(value: Any) -> Any:
    if isinstance(value, str):
        return unicodedata.normalize("NFD", value)
    if isinstance(value, dict):
        return {unicodedata.normalize("NFD", key): _nfd(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_nfd(item) for item in value]
    return value


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = [(key, _shuffled(item, rng)) for key, item in value.items()]
        rng.shuffle(items)
        return dict(items)
    if isinstance(value, list):
        return [_shuffled(item, rng) for item in value]
    return value


def _key_of_text(body: str) -> str:
    return idempotency_key_for(parse_strict_json(body))


def _distinct_after_nfc(value: Any) -> bool:
    """False when two keys of one object collapse into one under NFC (rejected as duplicates)."""
    try:
        canonical_body(value)
    except MalformedJsonError:
        return False
    return True


@given(objects, st.integers())
def test_key_is_invariant_under_key_order(document: dict[str, Any], seed: int) -> None:
    assume(_distinct_after_nfc(document))
    shuffled = _shuffled(document, random.Random(seed))
    assert _key_of_text(json.dumps(shuffled)) == _key_of_text(json.dumps(document))


@given(objects)
def test_key_is_invariant_under_whitespace_and_escaping(document: dict[str, Any]) -> None:
    assume(_distinct_after_nfc(document))
    compact = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    spaced = json.dumps(document, indent=4, ensure_ascii=True)
    assert _key_of_text(compact) == _key_of_text(spaced)


@given(objects)
def test_key_is_invariant_under_nfc_nfd(document: dict[str, Any]) -> None:
    assume(_distinct_after_nfc(document) and _distinct_after_nfc(_nfd(document)))
    assert _key_of_text(json.dumps(_nfd(document))) == _key_of_text(json.dumps(document))


@settings(max_examples=300)
@given(objects, objects)
def test_different_payloads_give_different_keys(first: dict[str, Any], second: dict[str, Any]) -> None:
    assume(_distinct_after_nfc(first) and _distinct_after_nfc(second))
    parsed_first = parse_strict_json(json.dumps(first))
    parsed_second = parse_strict_json(json.dumps(second))
    assume(canonical_json(parsed_first) != canonical_json(parsed_second))
    assert idempotency_key_for(parsed_first) != idempotency_key_for(parsed_second)


@given(objects)
def test_canonical_form_round_trips_and_is_a_fixed_point(document: dict[str, Any]) -> None:
    assume(_distinct_after_nfc(document))
    once = canonical_json(parse_strict_json(json.dumps(document)))
    assert canonical_json(parse_strict_json(once)) == once


def test_canonical_form_spelling() -> None:
    assert canonical_json({"b": 1, "a": ["é", 2.5, None, True]}) == '{"a":["é",2.5,null,true],"b":1}'
    assert _key_of_text('{"amount": 42.0}') == _key_of_text('{"amount": 42}')
    assert _key_of_text('{"amount": 1}') != _key_of_text('{"amount": "1"}')


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("order-123", True),
        ("a" * 8, True),
        ("a" * 7, False),
        ("a" * 128, True),
        ("a" * 129, False),
        ("ns:order_1.v2", True),
        ("has space1", False),
        ("slash/not-ok", False),
        ("ünïcode-key", False),
    ],
)
def test_client_key_format(key: str, valid: bool) -> None:
    assert is_valid_client_key(key) is valid
