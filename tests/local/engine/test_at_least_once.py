"""Engine conformance: the at-least-once mode duplicates SQS receives (a lost delete leaves a copy),
EventBridge rule deliveries and SNS deliveries, and records each duplicate
(lab/localcloud/engine_patches/at_least_once.py). The local tier runs with it on.

On an engine of its own with every delivery duplicated (share 1), so each behaviour shows at once.
SQS developer guide, "At-least-once delivery"; EventBridge and SNS deliver at least once too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from lab.harness import lifecycle
from lab.harness.paths import StateDir
from lab.localcloud.engine import REGION, EngineInfo, aws_env
from lab.localcloud.engine_patches.delivery_stats import RULE_DELIVERY, SNS_DELIVERY, SQS_RECEIVE, read_counts
from tests.local.conftest import LocalEngine, queue_arn

# Long enough that a copy left by a deleted receive cannot show up within one test step.
HOLD_S = 60


@pytest.fixture(scope="module")
def doubling_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEngine]:
    state = StateDir(tmp_path_factory.mktemp("lab-at-least-once"))
    info: EngineInfo = lifecycle.start(state, auth=True, duplicate_share=1.0)
    try:
        yield LocalEngine(state=state, info=info)
    finally:
        lifecycle.down(state)


def receive_all(sqs: Any, url: str, *, wait_s: float, visibility: int = HOLD_S) -> list[dict[str, Any]]:
    """Whatever arrives within wait_s, hidden for `visibility` seconds (not deleted)."""
    deadline = time.monotonic() + wait_s
    messages: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        messages += sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=visibility
        ).get("Messages", [])
    return messages


def receive_first(sqs: Any, url: str, *, visibility: int) -> list[dict[str, Any]]:
    """The first non-empty receive within a few seconds (a short visibility would let the same
    message be received again within a longer wait)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=visibility
        ).get("Messages", [])
        if messages:
            return list(messages)
    return []


def open_queue(
    engine: LocalEngine, name: Callable[[str], str], service: str | None = None
) -> tuple[str, str]:
    """(url, arn) of a new queue; `service` may send to it."""
    sqs = engine.client("sqs")
    queue_name = name("q")
    url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    arn = queue_arn(queue_name)
    if service:
        statement = {
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sqs:SendMessage",
            "Resource": arn,
        }
        sqs.set_queue_attributes(
            QueueUrl=url,
            Attributes={"Policy": json.dumps({"Version": "2012-10-17", "Statement": [statement]})},
        )
    return url, arn


def test_the_local_tier_runs_in_at_least_once_mode(local_engine: LocalEngine) -> None:
    assert local_engine.info.duplicate_share > 0


def test_a_deleted_message_comes_back_once_its_visibility_timeout_ends(doubling_engine, name) -> None:
    sqs = doubling_engine.client("sqs")
    url, arn = open_queue(doubling_engine, name)
    sent = sqs.send_message(QueueUrl=url, MessageBody="once")["MessageId"]

    (first,) = receive_first(sqs, url, visibility=2)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    assert receive_all(sqs, url, wait_s=1) == [], "the copy showed before the receive's visibility timeout"
    (again,) = receive_all(sqs, url, wait_s=3)

    assert (first["MessageId"], again["MessageId"]) == (sent, sent)
    assert again["Body"] == "once"
    assert read_counts(doubling_engine.state.duplicates_json).of(SQS_RECEIVE, arn) == 1


def test_a_message_not_deleted_leaves_no_copy(doubling_engine, name) -> None:
    """Released (or failed, or timed out), the message itself comes back: no second copy."""
    sqs = doubling_engine.client("sqs")
    url, arn = open_queue(doubling_engine, name)
    sqs.send_message(QueueUrl=url, MessageBody="kept")

    (first,) = receive_first(sqs, url, visibility=HOLD_S)
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0)

    assert len(receive_all(sqs, url, wait_s=2)) == 1
    assert read_counts(doubling_engine.state.duplicates_json).of(SQS_RECEIVE, arn) == 0


def test_a_rule_delivers_the_same_event_twice(doubling_engine, name) -> None:
    events, sqs = doubling_engine.client("events"), doubling_engine.client("sqs")
    url, arn = open_queue(doubling_engine, name, "events.amazonaws.com")
    bus = name("bus")
    events.create_event_bus(Name=bus)
    events.put_rule(Name="all", EventBusName=bus, EventPattern=json.dumps({"source": ["lab.conformance"]}))
    events.put_targets(Rule="all", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])

    entry = {"Source": "lab.conformance", "DetailType": "Probe", "Detail": "{}", "EventBusName": bus}
    (event_id,) = [e["EventId"] for e in events.put_events(Entries=[entry])["Entries"]]
    delivered = receive_all(sqs, url, wait_s=3)

    assert [json.loads(m["Body"])["id"] for m in delivered] == [event_id, event_id]
    assert read_counts(doubling_engine.state.duplicates_json).of(RULE_DELIVERY, arn) == 1


def test_a_topic_delivers_the_same_notification_twice(doubling_engine, name) -> None:
    sns, sqs = doubling_engine.client("sns"), doubling_engine.client("sqs")
    url, arn = open_queue(doubling_engine, name, "sns.amazonaws.com")
    topic_arn = sns.create_topic(Name=name("topic"))["TopicArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)

    message_id = sns.publish(TopicArn=topic_arn, Message="hello")["MessageId"]
    delivered = receive_all(sqs, url, wait_s=3)

    assert [json.loads(m["Body"])["MessageId"] for m in delivered] == [message_id, message_id]
    assert read_counts(doubling_engine.state.duplicates_json).of(SNS_DELIVERY, arn) == 1


def test_fifo_queues_are_never_duplicated(doubling_engine, name) -> None:
    """FIFO queues deliver exactly once within their deduplication interval."""
    sqs = doubling_engine.client("sqs")
    queue_name = f"{name('exact')}.fifo"
    url = sqs.create_queue(QueueName=queue_name, Attributes={"FifoQueue": "true"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g", MessageDeduplicationId="d")

    (first,) = receive_first(sqs, url, visibility=1)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])

    assert receive_all(sqs, url, wait_s=3) == []


def test_an_engine_started_without_the_mode_duplicates_nothing(tmp_path, name) -> None:
    state = StateDir(tmp_path / "exactly-once")
    info = lifecycle.start(state, auth=True, duplicate_share=0.0)
    try:
        env = aws_env(info.endpoint_url)
        sqs = boto3.client(
            "sqs", endpoint_url=info.endpoint_url, region_name=REGION,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )  # fmt: skip
        url = sqs.create_queue(QueueName=name("plain"))["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="x")
        (first,) = receive_first(sqs, url, visibility=1)
        sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
        assert receive_all(sqs, url, wait_s=2.5) == []
        assert info.duplicate_share == 0.0
        assert not state.duplicates_json.exists()
    finally:
        lifecycle.down(state)
