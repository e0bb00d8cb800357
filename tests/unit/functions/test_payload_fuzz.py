"""No body, however odd, makes the ingest parser fail with anything but a 4xx rejection (hypothesis)."""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from functions.common.canonical import idempotency_key_for
from functions.common.payload import SQS_UNSAFE_TEXT
from functions.ingest.service import IngestRejected, parse_request
from tests.unit.functions.sqs_rules import OUTSIDE_SQS_CHARACTERS

JSON_HEADERS = {"content-type": "application/json"}
# Fragments that steer random text towards the parser's corner cases.
fragments = st.sampled_from(
    [
        '{"orderId":',
        '"amount":',
        "NaN",
        "1e999",
        "[",
        "]",
        "{",
        "}",
        '"\\ud800"',
        "9" * 40,
        ",",
        ":",
        '"',
        "\\",
    ]
)
bodies = st.text(max_size=200) | st.lists(fragments | st.text(max_size=5), max_size=30).map("".join)


def _outcome(body: str | None, *, is_base64: bool) -> Any:
    try:
        return parse_request(
            body=body, is_base64_encoded=is_base64, headers=JSON_HEADERS, max_body_bytes=4096
        )
    except IngestRejected as rejection:
        outcome = rejection
    assert 400 <= outcome.status < 500
    assert outcome.code
    return outcome


@settings(max_examples=400)
@given(bodies)
def test_any_text_body_is_accepted_or_rejected_with_a_4xx(body: str) -> None:
    _outcome(body, is_base64=False)


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_any_base64_body_is_accepted_or_rejected_with_a_4xx(raw: bytes) -> None:
    _outcome(base64.b64encode(raw).decode("ascii"), is_base64=True)


@given(
    st.text(min_size=1, max_size=20).filter(str.strip),
    st.integers(min_value=0, max_value=10**12) | st.floats(min_value=0, max_value=1e12, allow_nan=False),
    st.dictionaries(
        st.text(max_size=8).filter(lambda k: k not in {"orderId", "amount", "idempotencyKey"}),
        st.text(max_size=8),
        max_size=3,
    ),
)
def test_valid_events_are_accepted_with_the_canonical_key(
    order_id: str, amount: float, extra: dict[str, str]
) -> None:
    payload = {"orderId": order_id, "amount": amount, **extra}
    outcome = _outcome(json.dumps(payload), is_base64=False)
    if isinstance(outcome, IngestRejected):
        # Only keys that collide after NFC normalization may make a generated payload invalid.
        assert outcome.code == "malformed_json"
        return
    assert outcome.idempotency_key == idempotency_key_for(json.loads(outcome.message_body))
    assert not outcome.client_supplied_key


def test_the_sqs_character_rule_matches_the_documented_list_at_every_code_point() -> None:
    """SQS_UNSAFE_TEXT is written as the complement of the SendMessage reference's list (it compiles
    faster); over every code point it finds exactly the characters the list, as the test wrapper
    writes it from the document, leaves out."""
    every_code_point = "".join(map(chr, range(sys.maxunicode + 1)))
    assert SQS_UNSAFE_TEXT.findall(every_code_point) == OUTSIDE_SQS_CHARACTERS.findall(every_code_point)
    assert "\ufffe" in SQS_UNSAFE_TEXT.findall(every_code_point)
