"""Engine conformance: the SQS and Lambda behaviours the ingestion stage relies on, one test each."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

# Source of a function that fails the records whose body says so and reports them as batch item
# failures (what the worker does through Powertools' BatchProcessor).
PARTIAL_BATCH_SOURCE = """
import json

def lambda_handler(event, context):
    failures = [
        {"itemIdentifier": record["messageId"]}
        for record in event["Records"]
        if json.loads(record["body"]).get("fail")
    ]
    return {"batchItemFailures": failures}
"""

SLEEPER_SOURCE = """
import time

def lambda_handler(event, context):
    time.sleep(5)
    return {"batchItemFailures": []}
"""


def _allow(action: str, resource: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}],
    }


def _queue_with_dlq(
    sqs: Any, name: str, arn_of_queue, *, max_receive_count: int, visibility: int
) -> tuple[str, str]:
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    queue_url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": arn_of_queue(f"{name}-dlq"), "maxReceiveCount": max_receive_count}
            ),
        },
    )["QueueUrl"]
    return queue_url, dlq_url


def _count(sqs: Any, queue_url: str, attribute: str = "ApproximateNumberOfMessages") -> int:
    return int(
        sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[attribute])["Attributes"][attribute]
    )


def _drain(sqs: Any, queue_url: str, expected: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(messages) < expected and time.monotonic() < deadline:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        messages.extend(batch)
    return messages


def test_sqs_dlq_receives_message_after_max_receive_count(local_engine, name, arn_of_queue):
    sqs = local_engine.client("sqs")
    queue_url, dlq_url = _queue_with_dlq(sqs, name("q"), arn_of_queue, max_receive_count=2, visibility=1)
    sqs.send_message(QueueUrl=queue_url, MessageBody="poison")

    receives = 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1, AttributeNames=["All"]).get(
            "Messages", []
        )
        if got:
            receives += 1
            assert int(got[0]["Attributes"]["ApproximateReceiveCount"]) == receives
        elif _count(sqs, dlq_url) == 1:
            break
    assert receives == 2
    moved = _drain(sqs, dlq_url, 1)
    assert [m["Body"] for m in moved] == ["poison"]


def test_sqs_delay_seconds_hides_message_until_due(local_engine, name):
    sqs = local_engine.client("sqs")
    queue_url = sqs.create_queue(QueueName=name("delay"))["QueueUrl"]
    sent_at = time.monotonic()
    sqs.send_message(QueueUrl=queue_url, MessageBody="later", DelaySeconds=2)

    assert sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0).get("Messages") is None
    assert _count(sqs, queue_url, "ApproximateNumberOfMessagesDelayed") == 1
    got = _drain(sqs, queue_url, 1, timeout=6)
    assert [m["Body"] for m in got] == ["later"]
    assert time.monotonic() - sent_at >= 1.9


def test_sqs_mapping_honours_partial_batch_response(local_engine, make_function, name, arn_of_queue, wait):
    sqs = local_engine.client("sqs")
    lam = local_engine.client("lambda")
    queue_name = name("partial")
    queue_url, dlq_url = _queue_with_dlq(sqs, queue_name, arn_of_queue, max_receive_count=1, visibility=2)
    function = make_function(PARTIAL_BATCH_SOURCE)
    # Sent before the mapping exists so that all four arrive in one batch.
    sqs.send_message_batch(
        QueueUrl=queue_url,
        Entries=[{"Id": str(i), "MessageBody": json.dumps({"n": i, "fail": i == 2})} for i in range(4)],
    )
    lam.create_event_source_mapping(
        FunctionName=function,
        EventSourceArn=arn_of_queue(queue_name),
        BatchSize=10,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )

    failed = _drain(sqs, dlq_url, 1, timeout=20)
    assert [json.loads(m["Body"])["n"] for m in failed] == [2]
    wait(
        lambda: _count(sqs, queue_url) + _count(sqs, queue_url, "ApproximateNumberOfMessagesNotVisible") == 0,
        timeout=10,
        what="the three successful records to be deleted",
    )
    assert _count(sqs, dlq_url) == 0


def test_lambda_timeout_kill_returns_the_whole_batch(local_engine, make_function, name, arn_of_queue):
    sqs = local_engine.client("sqs")
    lam = local_engine.client("lambda")
    queue_name = name("timeout")
    queue_url, dlq_url = _queue_with_dlq(sqs, queue_name, arn_of_queue, max_receive_count=1, visibility=2)
    function = make_function(SLEEPER_SOURCE, timeout=1)
    sqs.send_message_batch(
        QueueUrl=queue_url, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(3)]
    )
    started = time.monotonic()
    lam.create_event_source_mapping(
        FunctionName=function, EventSourceArn=arn_of_queue(queue_name), BatchSize=10,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )  # fmt: skip

    # The invocation is killed after 1 s (not allowed its 5 s sleep) and, as on AWS, none of the
    # batch counts as processed: all three come back and, at maxReceiveCount 1, reach the DLQ.
    moved = _drain(sqs, dlq_url, 3, timeout=20)
    assert sorted(m["Body"] for m in moved) == ["0", "1", "2"]
    assert time.monotonic() - started < 20


def test_async_invoke_runs_the_function(local_engine, make_function, name, arn_of_queue):
    sqs = local_engine.client("sqs")
    lam = local_engine.client("lambda")
    queue_name = name("async")
    queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    function = make_function(
        """
        import os, boto3

        def lambda_handler(event, context):
            boto3.client("sqs").send_message(QueueUrl=os.environ["OUT"], MessageBody=event["job"])
        """,
        environment={"OUT": queue_url},
        policy=_allow("sqs:SendMessage", arn_of_queue(queue_name)),
    )

    response = lam.invoke(FunctionName=function, InvocationType="Event", Payload=json.dumps({"job": "j-1"}))

    assert response["StatusCode"] == 202
    got = _drain(sqs, queue_url, 1, timeout=15)
    assert [m["Body"] for m in got] == ["j-1"]


def test_functions_import_the_pinned_powertools(local_engine, make_function):
    lam = local_engine.client("lambda")
    function = make_function(
        """
        from aws_lambda_powertools import Logger, Metrics, Tracer
        from aws_lambda_powertools.shared.version import VERSION

        def lambda_handler(event, context):
            return {"powertools": VERSION, "remainingMs": context.get_remaining_time_in_millis()}
        """
    )
    pinned = next(
        line.split("==")[1].strip()
        for line in Path("requirements-runtime.txt").read_text().splitlines()
        if line.startswith("aws-lambda-powertools==")
    )

    result = json.loads(lam.invoke(FunctionName=function, Payload=b"{}")["Payload"].read())

    assert result["powertools"] == pinned
    assert 0 < result["remainingMs"] <= 10_000


def test_sqs_peek_does_not_count_as_a_receive(local_engine, name):
    """The alarm agent reads message ages through the engine's peek endpoint; it must not touch
    ApproximateReceiveCount, or it would push messages towards the DLQ."""
    import urllib.parse
    import urllib.request

    sqs = local_engine.client("sqs")
    queue_url = sqs.create_queue(QueueName=name("peek"))["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody="x")
    query = urllib.parse.urlencode({"QueueUrl": queue_url})
    for _ in range(3):
        with urllib.request.urlopen(
            f"{local_engine.endpoint_url}/_ministack/sqs/messages?{query}"
        ) as response:
            peeked = json.loads(response.read())
    (messages,) = [
        m for region in peeked["messages"].values() for queues in region.values() for m in queues.values()
    ]
    assert len(messages) == 1
    assert messages[0]["SentTimestamp"] <= time.time()

    got = sqs.receive_message(QueueUrl=queue_url, AttributeNames=["ApproximateReceiveCount"])["Messages"]
    assert got[0]["Attributes"]["ApproximateReceiveCount"] == "1"
