"""A snapshot of the stage: queue depths and ages, alarm states, state records by status."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.common.names import Output, RecordStatus
from stage_client.target import Target

# Queue outputs in display order; the quarantine and audit queues are optional on older stages.
QUEUES: tuple[tuple[str, Output, Output | None], ...] = (
    ("main", Output.QUEUE_URL, Output.QUEUE_NAME),
    ("dlq", Output.DLQ_URL, Output.DLQ_NAME),
    ("quarantine", Output.QUARANTINE_QUEUE_URL, None),
    ("audit", Output.EVENT_AUDIT_QUEUE_URL, None),
)
SQS_NAMESPACE = "AWS/SQS"
AGE_METRIC = "ApproximateAgeOfOldestMessage"
VISIBLE_METRIC = "ApproximateNumberOfMessagesVisible"
# A full table scan is fine for a lab table; past this many items the counts are marked partial.
MAX_SCANNED_ITEMS = 200_000


@dataclass(frozen=True)
class QueueDepth:
    name: str
    url: str
    visible: int
    in_flight: int
    delayed: int
    oldest_age_s: float | None


@dataclass(frozen=True)
class AlarmState:
    name: str
    state: str
    metric: str
    namespace: str
    dimensions: dict[str, str]
    reason: str
    updated: str
    period_s: int = 60
    evaluation_periods: int = 1
    threshold: float = 0.0

    @classmethod
    def from_api(cls, alarm: dict[str, Any]) -> AlarmState:
        return cls(
            name=alarm["AlarmName"],
            state=alarm.get("StateValue", "INSUFFICIENT_DATA"),
            metric=alarm.get("MetricName", ""),
            namespace=alarm.get("Namespace", ""),
            dimensions={d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])},
            reason=alarm.get("StateReason", ""),
            updated=str(alarm.get("StateUpdatedTimestamp", "")),
            period_s=int(alarm.get("Period", 60)),
            evaluation_periods=int(alarm.get("EvaluationPeriods", 1)),
            threshold=float(alarm.get("Threshold", 0.0)),
        )


@dataclass
class StageStatus:
    target: str
    taken_at: float
    queues: dict[str, QueueDepth]
    alarms: list[AlarmState]
    records_by_status: dict[str, int]
    records_partial: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def queue_depth(target: Target, label: str, *, with_age: bool = True) -> QueueDepth | None:
    """Depth of one of the stage's queues (None when the stage has no such queue)."""
    for name, url_output, name_output in QUEUES:
        if name != label:
            continue
        url = target.optional_output(url_output)
        if not url:
            return None
        attributes = target.client("sqs").get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        queue_name = (target.optional_output(name_output) if name_output else None) or url.rsplit("/", 1)[-1]
        visible = int(attributes.get("ApproximateNumberOfMessages", 0))
        in_flight = int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))
        delayed = int(attributes.get("ApproximateNumberOfMessagesDelayed", 0))
        age: float | None = None
        if with_age:
            # The metric's last minute may still describe messages that are gone; an empty queue
            # has no oldest message.
            age = oldest_message_age(target, queue_name) if visible + in_flight + delayed else 0.0
        return QueueDepth(
            name=queue_name, url=url, visible=visible, in_flight=in_flight, delayed=delayed, oldest_age_s=age
        )
    raise KeyError(label)


def oldest_message_age(target: Target, queue_name: str, *, window_s: int = 300) -> float | None:
    """The latest ApproximateAgeOfOldestMessage datapoint (SQS does not expose the age directly).

    On the local cloud the metrics agent publishes the same metric, so this reads the same way.
    """
    now = datetime.now(UTC)
    try:
        response = target.client("cloudwatch").get_metric_statistics(
            Namespace=SQS_NAMESPACE,
            MetricName=AGE_METRIC,
            Dimensions=[{"Name": "QueueName", "Value": queue_name}],
            StartTime=now - timedelta(seconds=window_s),
            EndTime=now + timedelta(seconds=60),
            Period=60,
            Statistics=["Maximum"],
        )
    except (ClientError, BotoCoreError):
        return None
    points = sorted(response.get("Datapoints", []), key=lambda p: p["Timestamp"])
    return float(points[-1]["Maximum"]) if points else None


def stage_alarms(target: Target) -> list[AlarmState]:
    """The stage's alarms: every metric alarm that notifies the stage's alarm topic.

    Selecting by alarm action needs no naming convention and cannot pick up another stage's alarms.
    """
    topic = target.optional_output(Output.ALARM_TOPIC_ARN)
    alarms: list[AlarmState] = []
    paginator = target.client("cloudwatch").get_paginator("describe_alarms")
    for page in paginator.paginate(AlarmTypes=["MetricAlarm"]):
        for alarm in page.get("MetricAlarms", []):
            if topic is None or topic in alarm.get("AlarmActions", []) or topic in alarm.get("OKActions", []):
                alarms.append(AlarmState.from_api(alarm))
    return sorted(alarms, key=lambda a: a.name)


def queue_alarms(alarms: list[AlarmState], queue_name: str) -> list[AlarmState]:
    """The alarms watching one queue (by its QueueName dimension)."""
    return [a for a in alarms if a.namespace == SQS_NAMESPACE and a.dimensions.get("QueueName") == queue_name]


def records_by_status(target: Target, *, max_items: int = MAX_SCANNED_ITEMS) -> tuple[dict[str, int], bool]:
    """Count state records per status with one projected scan; (counts, partial)."""
    counts: Counter[str] = Counter()
    scanned = 0
    paginator = target.client("dynamodb").get_paginator("scan")
    pages = paginator.paginate(
        TableName=target.output(Output.TABLE_NAME),
        ProjectionExpression="#s",
        ExpressionAttributeNames={"#s": "status"},
    )
    for page in pages:
        for item in page.get("Items", []):
            counts[item.get("status", {}).get("S", "?")] += 1
        scanned += page.get("ScannedCount", 0)
        if scanned >= max_items:
            return dict(counts), True
    return dict(counts), False


def count_records(target: Target, status: RecordStatus | None = None) -> int:
    """State records in the table (of one status when given), counted by the table (Select COUNT),
    so no item crosses the wire: cheap enough to poll while a load runs."""
    kwargs: dict[str, Any] = {"TableName": target.output(Output.TABLE_NAME), "Select": "COUNT"}
    if status is not None:
        kwargs.update(
            FilterExpression="#s = :status",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":status": {"S": status.value}},
        )
    paginator = target.client("dynamodb").get_paginator("scan")
    return sum(int(page["Count"]) for page in paginator.paginate(**kwargs))


def stage_status(target: Target) -> StageStatus:
    notes: list[str] = []
    queues = {}
    for label, _url, _name in QUEUES:
        depth = queue_depth(target, label)
        if depth is not None:
            queues[label] = depth
    try:
        alarms = stage_alarms(target)
    except (ClientError, BotoCoreError) as error:
        alarms = []
        notes.append(f"alarms unavailable: {error}")
    counts, partial = records_by_status(target)
    return StageStatus(
        target=target.name,
        taken_at=time.time(),
        queues=queues,
        alarms=alarms,
        records_by_status=counts,
        records_partial=partial,
        notes=notes,
    )
