"""The harness on the deployed stage: `make lab`'s sample events (sent and followed through the
stage client) and its summary, and the outputs file the client's `local` target reads back."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

from functions.common.names import Output, RecordStatus
from lab.harness.paths import StateDir
from lab.harness.samples import send_sample_events
from lab.harness.summary import summary
from stage_client.target import Target, load_local_target

if TYPE_CHECKING:
    from tests.local.conftest import LocalEngine


def test_sample_events_end_succeeded_and_are_shown_as_the_table_holds_them(local_target: Target) -> None:
    lines: list[str] = []
    rows = send_sample_events(local_target, 3, log=lines.append)
    assert [row["status"] for row in rows] == [RecordStatus.SUCCEEDED.value] * 3
    assert all(row["attempts"] == 1 for row in rows)
    assert lines[0].split() == ["idempotencyKey", "status", "attempts", "processedAt"]
    assert len(lines) == 4
    assert all(RecordStatus.SUCCEEDED.value in line for line in lines[1:])


def test_the_outputs_file_names_the_deployed_stage(local_target: Target, local_engine: LocalEngine) -> None:
    state = StateDir(local_engine.state.root)
    target = load_local_target(state.outputs_json)
    assert target == local_target
    assert target.output(Output.TABLE_NAME) == local_target.output(Output.TABLE_NAME)
    assert target.api_url.startswith(f"{target.endpoint_url}/_aws/execute-api/")
    text = summary(state)
    assert f"API          {target.api_url}" in text
    assert "IAM enforced" in text


def test_the_outputs_file_records_the_at_least_once_mode(
    local_target: Target, local_engine: LocalEngine
) -> None:
    """What the drills read to tell the queue's own duplicate deliveries from a fault's."""
    assert local_target.local_cloud["duplicateShare"] == local_engine.info.duplicate_share > 0
    assert local_target.local_cloud["duplicatesFile"] == str(local_engine.state.duplicates_json)


def test_the_alarm_topic_has_a_subscriber_the_drills_read(local_target: Target) -> None:
    """The stage's own alarm inbox (AlarmTopic, as deployed on AWS) is the topic's one SQS subscriber:
    what the account publishes there arrives; whether CloudWatch may publish is the topic policy's
    business."""
    sns, sqs = local_target.client("sns"), local_target.client("sqs")
    topic_arn = local_target.output(Output.ALARM_TOPIC_ARN)
    subscribers = [
        s["Endpoint"]
        for s in sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
        if s["Protocol"] == "sqs"
    ]
    assert [arn.rsplit(":", 1)[1] for arn in subscribers] == ["ingestion-local-alarm-inbox"]
    queue_url = sqs.get_queue_url(QueueName=subscribers[0].rsplit(":", 1)[1])["QueueUrl"]
    marker = f"harness-probe-{uuid.uuid4().hex}"
    sns.publish(TopicArn=topic_arn, Message=marker)
    deadline = time.monotonic() + 10
    bodies: list[str] = []
    while marker not in " ".join(bodies) and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", []):
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    # Raw message delivery (AlarmTopic): the body is the published message itself, no SNS envelope.
    assert marker in bodies
