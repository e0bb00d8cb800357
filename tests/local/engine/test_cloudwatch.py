"""Engine conformance: the CloudWatch behaviours the lab's metrics/alarm agent builds on."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

FAILING_SOURCE = """
def lambda_handler(event, context):
    if event.get("fail"):
        raise RuntimeError("asked to fail")
    return {"ok": True}
"""


def _alarm(cloudwatch, name: str, queue: str, actions: list[str] | None = None) -> None:
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/SQS",
        MetricName="ApproximateNumberOfMessagesVisible",
        Dimensions=[{"Name": "QueueName", "Value": queue}],
        Statistic="Maximum",
        Period=10,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
        AlarmActions=actions or [],
    )


def _state(cloudwatch, name: str) -> str:
    return str(cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"])


def test_engine_never_evaluates_alarms_itself(local_engine, name):
    """ministack's own evaluation ignores dimensions; the lab's launcher turns it off so that only
    the agent, which honours them, decides states."""
    cloudwatch = local_engine.client("cloudwatch")
    alarm = name("visible")
    _alarm(cloudwatch, alarm, queue=name("queue-a"))

    cloudwatch.put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {"MetricName": "ApproximateNumberOfMessagesVisible", "Value": 50,
             "Dimensions": [{"Name": "QueueName", "Value": name("queue-b")}]},
        ],
    )  # fmt: skip

    assert _state(cloudwatch, alarm) == "INSUFFICIENT_DATA"


def test_set_alarm_state_fires_the_alarm_sns_action(local_engine, name, arn_of_queue, wait):
    cloudwatch = local_engine.client("cloudwatch")
    sns = local_engine.client("sns")
    sqs = local_engine.client("sqs")
    topic_arn = sns.create_topic(Name=name("alarms"))["TopicArn"]
    queue_name = name("notified")
    queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    sqs.set_queue_attributes(
        QueueUrl=queue_url,
        Attributes={
            "Policy": json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
                         "Action": "sqs:SendMessage", "Resource": arn_of_queue(queue_name)},
                    ],
                }
            )
        },
    )  # fmt: skip
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn_of_queue(queue_name))
    alarm = name("dlq")
    _alarm(cloudwatch, alarm, queue=name("dlq"), actions=[topic_arn])

    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="agent: threshold crossed")

    messages = wait(
        lambda: sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages"),
        timeout=10,
        what="the alarm notification",
    )
    notification = json.loads(json.loads(messages[0]["Body"])["Message"])
    assert notification["AlarmName"] == alarm
    assert notification["NewStateValue"] == "ALARM"
    assert _state(cloudwatch, alarm) == "ALARM"


def test_lambda_metrics_are_recorded_once_per_invocation(local_engine, make_function):
    cloudwatch = local_engine.client("cloudwatch")
    lam = local_engine.client("lambda")
    function = make_function(FAILING_SOURCE)

    lam.invoke(FunctionName=function, Payload=b"{}")
    lam.invoke(FunctionName=function, Payload=json.dumps({"fail": True}))
    lam.invoke(FunctionName=function, InvocationType="Event", Payload=b"{}")
    time.sleep(2)  # the asynchronous invocation runs in the background

    def total(metric: str, statistic: str = "Sum") -> float:
        now = datetime.now(UTC)
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/Lambda", MetricName=metric,
            Dimensions=[{"Name": "FunctionName", "Value": function}],
            StartTime=now - timedelta(minutes=5), EndTime=now + timedelta(minutes=1),
            Period=3600, Statistics=[statistic],
        )["Datapoints"]  # fmt: skip
        return float(sum(p[statistic] for p in points))

    assert total("Invocations") == 3
    assert total("Errors") == 1
    assert total("Duration", "Maximum") > 0
    # Stream-mapped invocations only (tests/local/engine/test_dynamodb_streams.py), as on AWS.
    assert total("IteratorAge", "SampleCount") == 0
