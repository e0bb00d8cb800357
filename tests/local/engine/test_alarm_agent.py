"""The metrics and alarm agent on the engine: queue metrics per queue, alarms decided by their own
dimensions, SNS actions fired, log-derived metrics (EMF and metric filters) published."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lab.localcloud import agent_process
from lab.localcloud.agent import oldest_message_age
from lab.localcloud.engine_patches.limits import OLDEST_MESSAGES_PATH


@pytest.fixture(scope="module")
def agent(local_engine):
    """The agent of the session engine (lab up starts the same process)."""
    if not agent_process.agent_running(local_engine.state):
        agent_process.start_agent(local_engine.state, local_engine.info)
    return local_engine.state


def _notified_queue(local_engine, name, arn_of_queue) -> tuple[str, str]:
    sns = local_engine.client("sns")
    sqs = local_engine.client("sqs")
    topic_arn = sns.create_topic(Name=name("alarm-topic"))["TopicArn"]
    queue_name = name("alarm-inbox")
    queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    statement = {
        "Effect": "Allow",
        "Principal": {"Service": "sns.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": arn_of_queue(queue_name),
    }
    sqs.set_queue_attributes(
        QueueUrl=queue_url,
        Attributes={"Policy": json.dumps({"Version": "2012-10-17", "Statement": [statement]})},
    )
    sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=arn_of_queue(queue_name),
        Attributes={"RawMessageDelivery": "true"},
    )
    return topic_arn, queue_url


def _visible_alarm(cloudwatch: Any, alarm: str, queue: str, topic_arn: str) -> None:
    cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        Namespace="AWS/SQS",
        MetricName="ApproximateNumberOfMessagesVisible",
        Dimensions=[{"Name": "QueueName", "Value": queue}],
        Statistic="Maximum",
        Period=10,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
        AlarmActions=[topic_arn],
        OKActions=[topic_arn],
    )


def test_agent_alarms_only_the_queue_whose_metric_breaches_and_notifies(
    agent, local_engine, name, arn_of_queue, wait
):
    cloudwatch = local_engine.client("cloudwatch")
    sqs = local_engine.client("sqs")
    busy, idle = name("busy"), name("idle")
    busy_url = sqs.create_queue(QueueName=busy)["QueueUrl"]
    sqs.create_queue(QueueName=idle)
    topic_arn, inbox_url = _notified_queue(local_engine, name, arn_of_queue)
    _visible_alarm(cloudwatch, f"{busy}-visible", busy, topic_arn)
    _visible_alarm(cloudwatch, f"{idle}-visible", idle, topic_arn)

    sqs.send_message(QueueUrl=busy_url, MessageBody="waiting")

    def states() -> dict[str, str]:
        alarms = cloudwatch.describe_alarms(AlarmNames=[f"{busy}-visible", f"{idle}-visible"])["MetricAlarms"]
        return {a["AlarmName"]: a["StateValue"] for a in alarms}

    wait(
        lambda: states()[f"{busy}-visible"] == "ALARM",
        timeout=40,
        what="the busy queue's alarm to reach ALARM",
    )
    wait(
        lambda: states()[f"{idle}-visible"] == "OK", timeout=25, what="the idle queue's alarm to settle on OK"
    )
    assert states()[f"{idle}-visible"] == "OK"

    notifications: list[dict[str, Any]] = []

    def alarm_notification() -> bool:
        for message in sqs.receive_message(QueueUrl=inbox_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            notifications.append(json.loads(message["Body"]))
        return any(
            n["AlarmName"] == f"{busy}-visible" and n["NewStateValue"] == "ALARM" for n in notifications
        )

    wait(alarm_notification, timeout=10, what="the ALARM notification on the alarm topic")
    assert not any(
        n["AlarmName"] == f"{idle}-visible" and n["NewStateValue"] == "ALARM" for n in notifications
    )

    # Back to OK once the queue is empty: the OK action fires too.
    for message in sqs.receive_message(QueueUrl=busy_url, MaxNumberOfMessages=10).get("Messages", []):
        sqs.delete_message(QueueUrl=busy_url, ReceiptHandle=message["ReceiptHandle"])
    wait(
        lambda: states()[f"{busy}-visible"] == "OK", timeout=40, what="the busy queue's alarm to return to OK"
    )


def test_agent_publishes_queue_age_without_receiving(agent, local_engine, name, wait):
    cloudwatch = local_engine.client("cloudwatch")
    sqs = local_engine.client("sqs")
    queue = name("aging")
    queue_url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody="old")

    def max_age() -> float:
        now = datetime.now(UTC)
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/SQS",
            MetricName="ApproximateAgeOfOldestMessage",
            Dimensions=[{"Name": "QueueName", "Value": queue}],
            StartTime=now - timedelta(minutes=2),
            EndTime=now + timedelta(minutes=1),
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]
        return max((p["Maximum"] for p in points), default=0.0)

    wait(lambda: max_age() >= 3, timeout=20, what="an age of oldest message of 3 s or more")
    (message,) = sqs.receive_message(QueueUrl=queue_url, AttributeNames=["ApproximateReceiveCount"])[
        "Messages"
    ]
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"


def _engine_get(local_engine, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{local_engine.info.endpoint_url}{path}", timeout=10) as response:
        return json.loads(response.read())


def _queue_entries(document: dict[str, Any], queue_url: str) -> list[dict[str, Any]]:
    return [
        entry
        for regions in document["messages"].values()
        for queues in regions.values()
        for url, entries in queues.items()
        if url == queue_url
        for entry in entries
    ]


def test_the_oldest_messages_summary_gives_the_age_the_full_peek_gives(local_engine, name):
    """engine_patches/queue_summary.py: the agent reads one entry per receive count, not every
    message, and computes the same ApproximateAgeOfOldestMessage (a message received three times
    no longer counts) as from ministack's full peek."""
    sqs = local_engine.client("sqs")
    queue_url = sqs.create_queue(QueueName=name("summary"))["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody="first")
    time.sleep(1.1)
    for body in ("second", "third"):
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    received = []
    for _ in range(3):
        received += sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, VisibilityTimeout=0)[
            "Messages"
        ]

    peeked = _queue_entries(_engine_get(local_engine, "/_ministack/sqs/messages"), queue_url)
    summary = _queue_entries(_engine_get(local_engine, OLDEST_MESSAGES_PATH), queue_url)

    assert len(peeked) == 3
    assert all(set(entry) == {"ReceiveCount", "SentTimestamp"} for entry in summary)
    assert sorted(e["ReceiveCount"] for e in summary) == sorted({e["ReceiveCount"] for e in peeked})
    now = time.time()
    assert oldest_message_age(summary, now) == oldest_message_age(peeked, now)
    if [m["Body"] for m in received] == ["first"] * 3:
        # The first message, received three times, no longer counts: the age is the others'.
        assert oldest_message_age(summary, now) < now - min(e["SentTimestamp"] for e in peeked)


EMF_AND_JSON_LOG_SOURCE = """
import json
import time

def lambda_handler(event, context):
    print(json.dumps({"level": "ERROR", "errorType": "SchemaValidationError", "processed": False}))
    print(json.dumps({
        "_aws": {"Timestamp": 0, "CloudWatchMetrics": [{"Namespace": event["namespace"],
                 "Dimensions": [["service"]], "Metrics": [{"Name": "RecordsFailed", "Unit": "Count"}]}]},
        "service": "probe", "RecordsFailed": 2,
    }))
"""


def test_agent_publishes_emf_and_metric_filter_metrics_from_function_logs(
    agent, local_engine, make_function, name, wait
):
    cloudwatch = local_engine.client("cloudwatch")
    logs = local_engine.client("logs")
    lam = local_engine.client("lambda")
    namespace = name("Probe")
    log_group = f"/lab/{name('probe')}"
    logs.create_log_group(logGroupName=log_group)
    logs.put_metric_filter(
        logGroupName=log_group,
        filterName="errors-by-type",
        filterPattern='{ $.errorType = "*" }',
        metricTransformations=[
            {
                "metricNamespace": namespace,
                "metricName": "ErrorsByType",
                "metricValue": "1",
                "dimensions": {"errorType": "$.errorType"},
            }
        ],
    )
    function = make_function(EMF_AND_JSON_LOG_SOURCE, log_group=log_group)

    lam.invoke(FunctionName=function, Payload=json.dumps({"namespace": namespace}))

    def total(metric: str, dimension: tuple[str, str]) -> float:
        now = datetime.now(UTC)
        points = cloudwatch.get_metric_statistics(
            Namespace=namespace,
            MetricName=metric,
            Dimensions=[{"Name": dimension[0], "Value": dimension[1]}],
            StartTime=now - timedelta(minutes=5),
            EndTime=now + timedelta(minutes=1),
            Period=60,
            Statistics=["Sum"],
        )["Datapoints"]
        return float(sum(p["Sum"] for p in points))

    wait(
        lambda: total("ErrorsByType", ("errorType", "SchemaValidationError")) == 1,
        timeout=20,
        what="the metric filter's ErrorsByType datum",
    )
    wait(
        lambda: total("RecordsFailed", ("service", "probe")) == 2,
        timeout=20,
        what="the EMF RecordsFailed datum",
    )


SLOW_LOGGER_SOURCE = """
import time

def lambda_handler(event, context):
    print("first line")
    time.sleep(1.5)
    print("last line")
    return {}
"""


def test_a_function_s_log_lines_are_stamped_when_the_engine_stores_them(local_engine, make_function, wait):
    """What the agent's short lookback (lab.localcloud.agent.LOG_LOOKBACK_MS) relies on: a line
    printed at the start of an invocation is stamped when the engine stores the invocation's
    output, not when it was printed, so no line arrives older than the lookback. Should the engine
    stamp lines at print time, this fails and the lookback must cover the longest invocation."""
    lam = local_engine.client("lambda")
    logs = local_engine.client("logs")
    function = make_function(SLOW_LOGGER_SOURCE)
    invoked_ms = int(time.time() * 1000)

    lam.invoke(FunctionName=function, Payload=b"{}")

    group = f"/aws/lambda/{function}"
    events = wait(
        lambda: [e for e in logs.filter_log_events(logGroupName=group)["events"] if "line" in e["message"]],
        timeout=15,
        what="the function's two lines",
    )
    first = next(e for e in events if e["message"] == "first line")
    assert first["timestamp"] >= invoked_ms + 1_400, "a line printed early was stamped at print time"
    assert all(e["timestamp"] == e["ingestionTime"] for e in events)
