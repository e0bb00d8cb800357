"""POST /events through the real handler, fuzzed (hypothesis): any JSON value, any Unicode, any header set.

Every answer is 202 (exactly one message queued, its body the canonical form) or a 4xx with a JSON
body (nothing queued). Never a 5xx, never an exception. SQS is moto wrapped with the character rule
moto does not enforce (tests/unit/functions/sqs_rules.py), and the state table read is on.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.common.canonical import canonical_json, computed_key_for_text
from functions.common.names import COMPUTED_KEY_PREFIX, IDEMPOTENCY_KEY_HEADER
from functions.common.payload import parse_strict_json
from functions.ingest import handler
from tests.unit.functions.http_events import http_event
from tests.unit.functions.sqs_rules import SqsWithCharacterRule

FUZZ_EXAMPLES = 2000

# Any code point, lone surrogates and U+FFFE/U+FFFF included.
any_text = st.text(st.characters(exclude_categories=()), max_size=12)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and Infinity too: json.dumps writes them, the ingest must refuse them
    | any_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=16,
)
# Objects close to an order, so that the accepted path is exercised as often as the refused ones.
plain_text = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12)
amounts = (
    st.integers(min_value=0, max_value=10**6)
    | st.floats(min_value=0, max_value=1e12)
    | st.integers(min_value=-5, max_value=2**70)
    | st.floats()
    | st.sampled_from(["1", None, True])
)
orders = st.fixed_dictionaries(
    {"orderId": plain_text | plain_text | any_text | st.integers(), "amount": amounts},
    optional={
        "idempotencyKey": any_text
        | st.from_regex(r"\A[A-Za-z0-9_.:-]{8,20}\Z")
        | st.just("sha256:" + "c" * 64),
        "note": json_values,
    },
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json",
        "application/json",
        "application/json; charset=utf-8",
        "application/vnd.order+json",
        "text/plain",
    ]
)
# Mostly a JSON content type (the way to a 202), sometimes anything at all.
json_headers = st.builds(
    lambda extra, content_type, key: {
        **extra,
        "content-type": content_type,
        **({IDEMPOTENCY_KEY_HEADER: key} if key is not None else {}),
    },
    st.dictionaries(st.text(max_size=10), any_text, max_size=2),
    content_types,
    st.none() | st.none() | any_text | st.from_regex(r"\A[A-Za-z0-9_.:-]{8,20}\Z"),
)
any_headers = st.dictionaries(st.text(max_size=10), any_text, max_size=3)
headers = st.sampled_from([*[True] * 5, False]).flatmap(
    lambda json_type: json_headers if json_type else any_headers
)
# The first branch is the one hypothesis favours as "simple": an order-shaped JSON body.
bodies = st.one_of(
    st.builds(json.dumps, orders, ensure_ascii=st.booleans()),
    st.builds(json.dumps, orders | json_values, ensure_ascii=st.booleans()),
    any_text,
    st.binary(max_size=64),
    st.none(),
)


@pytest.fixture
def post(stage: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    sqs = SqsWithCharacterRule(stage.sqs)
    real_client = handler.client
    monkeypatch.setattr(handler, "client", lambda service: sqs if service == "sqs" else real_client(service))
    handler.service.cache_clear()

    def call(body: str | bytes | None, request_headers: dict[str, str]) -> tuple[int, Any]:
        response = handler.lambda_handler(
            http_event("POST", "/events", body=body, headers=request_headers), lambda_context
        )
        return response["statusCode"], json.loads(response["body"])

    yield call
    handler.service.cache_clear()


def test_any_request_gets_a_202_or_a_4xx_with_a_json_body(post: Any, stage: Any) -> None:
    outcomes: Counter[int] = Counter()

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None)
    @given(body=bodies, request_headers=headers)
    def one_request(body: str | bytes | None, request_headers: dict[str, str]) -> None:
        status, answer = post(body, request_headers)

        queued = stage.receive_all(stage.queue_url)
        for message in queued:
            stage.sqs.delete_message(QueueUrl=stage.queue_url, ReceiptHandle=message["ReceiptHandle"])
        outcomes[status] += 1
        assert status == 202 or 400 <= status < 500, (status, answer)
        assert isinstance(answer, dict)
        if status != 202:
            assert isinstance(answer["error"], str)
            assert isinstance(answer["message"], str)
            assert queued == []
            return
        [message] = queued
        assert message["MessageId"] == answer["messageId"]
        # The queued body is the canonical form, and the key is the client's or the body's hash.
        assert canonical_json(parse_strict_json(message["Body"])) == message["Body"]
        key = answer["idempotencyKey"]
        assert key == computed_key_for_text(message["Body"]) or not key.startswith(COMPUTED_KEY_PREFIX)

    one_request()

    print(f"ingest fuzz: {sum(outcomes.values())} examples, by status {dict(sorted(outcomes.items()))}")
    # A fuzz that only ever reached one outcome would prove nothing about the other.
    assert outcomes[202] > 0
    assert sum(outcomes.values()) - outcomes[202] > 0
