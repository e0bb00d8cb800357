"""What drills read besides the stage client's views: AWS/Lambda errors, the worker's own EMF
counters, the table's size, the quarantine queue's messages, the alarm topic's notifications as a
subscriber receives them, and the duplicates the local cloud's at-least-once mode made."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from functions.common.names import (
    METRICS_NAMESPACE,
    LogField,
    MessageAttribute,
    MetricName,
    Output,
    function_log_group,
)
from lab.gamedays.runner import DrillContext, DrillFailed
from lab.localcloud.engine_patches.delivery_stats import SQS_RECEIVE, DuplicateCounts, read_counts
from stage_client.status import count_records

# Where a target gives no record of its platform's duplicate deliveries (a stage on AWS), how many
# duplicate deliveries a drill tolerates, as a share of its events. SQS standard queues duplicate
# "on rare occasions" (SQS developer guide, "At-least-once delivery"); the faults the drills look for
# duplicate far more (a whole batch failed for one record brings most of its records back).
UNRECORDED_DUPLICATE_SHARE = 0.1
# How long after an alarm's state change its notification may take to reach the subscriber. Both
# hops are asynchronous but take seconds; an undelivered notification (a topic policy without
# CloudWatch, say) should fail the drill quickly, not at the end of its budget.
NOTIFICATION_WAIT_S = 120.0


def observe_worker_errors(ctx: DrillContext, what: str) -> str:
    """FIS faults stop the invocation before our handler runs: watch AWS/Lambda Errors instead."""
    worker = ctx.target.output(Output.WORKER_FUNCTION_NAME)
    since = datetime.now(UTC) - timedelta(minutes=1)

    def errors() -> float | None:
        points = (
            ctx.target.client("cloudwatch")
            .get_metric_statistics(
                Namespace="AWS/Lambda",
                MetricName="Errors",
                Dimensions=[{"Name": "FunctionName", "Value": worker}],
                StartTime=since,
                EndTime=datetime.now(UTC) + timedelta(minutes=1),
                Period=60,
                Statistics=["Sum"],
            )
            .get("Datapoints", [])
        )
        total = sum(p["Sum"] for p in points)
        return total or None

    total = ctx.wait_until(f"AWS/Lambda Errors of {worker} > 0", errors, interval_s=15)
    ctx.mark(what, lambda_errors=total)
    return f"{what}: {total:.0f} worker errors in AWS/Lambda metrics"


class WorkerCounters:
    """The worker's own EMF counters (RecordsProcessed, DuplicatesDetected) since the drill began.

    Totals over one fixed window, read before and after, so the difference is what the drill
    caused whatever the period alignment; summed over every dimension set the metric has.
    """

    def __init__(self, ctx: DrillContext, lookback: timedelta = timedelta(minutes=15)) -> None:
        self._ctx = ctx
        self._since = datetime.now(UTC) - lookback
        self._baseline = {name: self._total(name) for name in self._names()}

    @staticmethod
    def _names() -> tuple[MetricName, MetricName]:
        return MetricName.RECORDS_PROCESSED, MetricName.DUPLICATES_DETECTED

    def _total(self, name: MetricName) -> float:
        cloudwatch = self._ctx.target.client("cloudwatch")
        metrics = cloudwatch.list_metrics(Namespace=METRICS_NAMESPACE, MetricName=name.value).get(
            "Metrics", []
        )
        total = 0.0
        for metric in metrics:
            points = cloudwatch.get_metric_statistics(
                Namespace=METRICS_NAMESPACE,
                MetricName=name.value,
                Dimensions=metric.get("Dimensions", []),
                StartTime=self._since,
                EndTime=datetime.now(UTC) + timedelta(minutes=1),
                Period=60,
                Statistics=["Sum"],
            ).get("Datapoints", [])
            total += sum(point["Sum"] for point in points)
        return total

    def delta(self, name: MetricName) -> float:
        return self._total(name) - self._baseline[name]

    def wait_for(self, name: MetricName, expected: int) -> float:
        """The metric's increase once it reached `expected` (metrics trail the work by seconds)."""
        value = self._ctx.wait_until(
            f"the worker's {name.value} metric to count {expected}",
            lambda: (delta := self.delta(name)) >= expected and delta,
            timeout_s=min(180.0, self._ctx.remaining()),
            interval_s=3,
            describe=lambda: f"{name.value} +{self.delta(name):.0f}",
        )
        return float(value)


def table_count(ctx: DrillContext) -> int:
    return count_records(ctx.target)


def take_quarantined(ctx: DrillContext, queue_url: str, keys: set[str]) -> list[str]:
    """Receive and delete the drill's own messages from the quarantine queue; others stay."""
    sqs = ctx.target.client("sqs")
    taken: list[str] = []
    for _ in range(20):
        messages = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            VisibilityTimeout=30,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            break
        for message in messages:
            attribute = message.get("MessageAttributes", {}).get(MessageAttribute.IDEMPOTENCY_KEY.value, {})
            key = attribute.get("StringValue")
            if key in keys:
                taken.append(key)
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        if len(taken) >= len(keys):
            break
    return taken


class AlarmInbox:
    """The stage's alarm notifications as a subscriber of its alarm topic gets them: proof that an
    alarm's state change reached someone, not only that its state changed (issue 12: a topic policy
    without CloudWatch in it lets alarms change state while nobody is told).

    The subscriber is the SQS subscription of the alarm topic that every stage deploys, its alarm
    inbox, which the pipeline's checks role may read (docs/local-cloud.md, "Alarm notifications reach
    someone")."""

    def __init__(self, ctx: DrillContext) -> None:
        self._ctx = ctx
        self._sqs = ctx.target.client("sqs")
        topic_arn = ctx.target.output(Output.ALARM_TOPIC_ARN)
        try:
            subscribers = [
                str(s["Endpoint"])
                for page in ctx.target.client("sns")
                .get_paginator("list_subscriptions_by_topic")
                .paginate(TopicArn=topic_arn)
                for s in page.get("Subscriptions", [])
                if s.get("Protocol") == "sqs"
            ]
        except ClientError as error:
            raise DrillFailed(
                f"cannot list the subscribers of the alarm topic {topic_arn} ({error}): the role running "
                "the drill needs sns:ListSubscriptionsByTopic on it, and to read its SQS subscriber "
                '(docs/local-cloud.md, "Alarm notifications reach someone")'
            ) from error
        if not subscribers:
            raise DrillFailed(
                f"the alarm topic {topic_arn} has no SQS subscriber: a drill cannot see its notifications "
                "(the stage must deploy one that the checks role can read)"
            )
        account, name = subscribers[0].split(":")[4], subscribers[0].split(":")[5]
        try:
            self.queue_url = str(
                self._sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
            )
        except ClientError as error:
            raise DrillFailed(
                f"cannot reach the alarm topic's subscriber queue {subscribers[0]} ({error}): the role "
                "running the drill needs sqs:GetQueueUrl, ReceiveMessage and DeleteMessage on it"
            ) from error
        # Notifications carry whole seconds; older ones are not this drill's.
        self._since = datetime.fromtimestamp(math.floor(ctx.started_wall), UTC)
        self.received: list[dict[str, Any]] = []

    def poll(self) -> None:
        """Read what arrived (deleting it: the queue is the checks' own inbox)."""
        while True:
            messages = self._sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=30
            ).get("Messages", [])
            if not messages:
                return
            for message in messages:
                notification = alarm_notification(message["Body"])
                if notification and notification_time(notification) >= self._since:
                    self.received.append(notification)
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )

    def find(self, alarm_name: str, state: str) -> dict[str, Any] | None:
        return matching_notification(self.received, alarm_name, state)

    def wait_for(self, alarm_name: str, state: str) -> dict[str, Any]:
        def arrived() -> dict[str, Any] | None:
            self.poll()
            return self.find(alarm_name, state)

        found = self._ctx.wait_until(
            f"the {state} notification of {alarm_name} at the alarm topic's subscriber",
            arrived,
            timeout_s=NOTIFICATION_WAIT_S,
            interval_s=1,
            describe=lambda: (
                f"{len(self.received)} notifications since the drill began: "
                + ", ".join(f"{n.get('AlarmName')} {n.get('NewStateValue')}" for n in self.received[-5:])
            ),
        )
        self._ctx.mark(f"notified {state}", alarm=alarm_name, subscriber=self.queue_url)
        return found


def matching_notification(
    received: list[dict[str, Any]], alarm_name: str, state: str
) -> dict[str, Any] | None:
    """The notification that proves `alarm_name` reached `state`: any ALARM notification since the
    drill began; for OK, the alarm's latest notification, and only if it left ALARM (an OK sent when
    a new alarm first left INSUFFICIENT_DATA, or before an ALARM that followed, proves no recovery)."""
    mine = [n for n in received if n.get("AlarmName") == alarm_name]
    if state != "OK":
        return next((n for n in mine if n.get("NewStateValue") == state), None)
    latest = max(mine, key=notification_time, default=None)
    if latest and latest.get("NewStateValue") == "OK" and latest.get("OldStateValue") == "ALARM":
        return latest
    return None


def alarm_notification(body: str) -> dict[str, Any] | None:
    """The alarm's message, from a raw delivery or an SNS envelope; None for anything else."""
    try:
        document = json.loads(body)
        if isinstance(document, dict) and document.get("Type") == "Notification":
            document = json.loads(document["Message"])
    except (json.JSONDecodeError, KeyError, TypeError):
        return None
    if not isinstance(document, dict) or "AlarmName" not in document or "NewStateValue" not in document:
        return None
    return document


def notification_time(notification: dict[str, Any]) -> datetime:
    """StateChangeTime (e.g. 2019-10-10T15:30:00.000+0000); a notification without one is recent."""
    try:
        return datetime.fromisoformat(str(notification["StateChangeTime"]))
    except (KeyError, ValueError):
        return datetime.now(UTC)


class PlatformDuplicates:
    """Duplicate deliveries of one queue that the platform made during a drill: recorded exactly by
    the local cloud's at-least-once mode; a stage on AWS records none, so a share of the events is
    allowed instead (UNRECORDED_DUPLICATE_SHARE)."""

    def __init__(self, ctx: DrillContext, queue_arn: str) -> None:
        record = ctx.target.local_cloud.get("duplicatesFile")
        self._path = Path(str(record)) if record else None
        self._queue_arn = queue_arn
        self._baseline = self._read()

    def _read(self) -> DuplicateCounts | None:
        return read_counts(self._path) if self._path else None

    @property
    def recorded(self) -> bool:
        return self._path is not None

    def made(self) -> int | None:
        """SQS receives of the queue the platform duplicated since the drill began (None: unknown)."""
        now, before = self._read(), self._baseline
        if now is None or before is None:
            return None
        return now.since(before).of(SQS_RECEIVE, self._queue_arn)

    def allowance(self, events: int) -> int:
        made = self.made()
        return made if made is not None else math.ceil(UNRECORDED_DUPLICATE_SHARE * events)


class DuplicateDetections:
    """The worker's "duplicate of a processed key" log lines for a drill's own keys, by key.

    The DuplicatesDetected metric is a stage-wide sum: a late datum of an earlier run's redelivery
    lands in any window a drill picks, so it cannot say which duplicates were this drill's. Each
    log line names its key and message, so these can. The JSON filter pattern narrows the read on
    AWS (CloudWatch Logs User Guide, "Filter pattern syntax for JSON log events"); the lines are
    matched here as well, since the local engine treats JSON patterns as match-all.
    """

    def __init__(self, ctx: DrillContext) -> None:
        self._ctx = ctx
        self._group = function_log_group(ctx.target.output(Output.WORKER_FUNCTION_NAME))
        self._since_ms = int(ctx.started_wall * 1000) - 1000

    def by_key(self, keys: set[str]) -> dict[str, list[str]]:
        """For each of `keys` flagged as a duplicate, the message id of each line that flagged it."""
        logs = self._ctx.target.client("logs")
        kwargs: dict[str, Any] = {
            "logGroupName": self._group,
            "startTime": self._since_ms,
            "filterPattern": f"{{ $.{LogField.DUPLICATE.value} IS TRUE }}",
        }
        flagged: dict[str, list[str]] = {}
        while True:
            try:
                page = logs.filter_log_events(**kwargs)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    return flagged
                raise
            for event in page.get("events", []):
                line = _json_line(event.get("message", ""))
                key = line.get(LogField.IDEMPOTENCY_KEY.value)
                if line.get(LogField.DUPLICATE.value) is True and key in keys:
                    flagged.setdefault(str(key), []).append(str(line.get(LogField.MESSAGE_ID.value)))
            if not page.get("nextToken"):
                return flagged
            kwargs["nextToken"] = page["nextToken"]

    def wait_for_every(self, keys: set[str]) -> dict[str, list[str]]:
        """The flagged messages once every key has at least one (logs trail the work by seconds)."""
        seen: dict[str, list[str]] = {}

        def complete() -> dict[str, list[str]] | None:
            seen.clear()
            seen.update(self.by_key(keys))
            return dict(seen) if len(seen) == len(keys) else None

        return self._ctx.wait_until(
            f"a duplicate log line of the worker for each of {len(keys)} keys",
            complete,
            timeout_s=min(180.0, self._ctx.remaining()),
            interval_s=3,
            describe=lambda: f"{len(seen)}/{len(keys)} keys flagged",
        )

    def settled_lines(self, keys: set[str], quiet_s: float = 6.0) -> int:
        """How many lines flag `keys`, once the count has not moved for `quiet_s` (log lines trail
        the work by seconds, and a count read too early would pass a check it should fail)."""
        lines, stable_since = -1, time.monotonic()
        deadline = time.monotonic() + min(60.0, max(quiet_s, self._ctx.remaining()))
        while True:
            now_lines = sum(len(ids) for ids in self.by_key(keys).values())
            if now_lines != lines:
                lines, stable_since = now_lines, time.monotonic()
            if time.monotonic() - stable_since >= quiet_s or time.monotonic() >= deadline:
                return lines
            time.sleep(min(2.0, quiet_s))


def _json_line(message: str) -> dict[str, Any]:
    """A structured log line as a dict; the runtime's own text lines (START, END, REPORT) as {}."""
    try:
        line = json.loads(message)
    except ValueError:
        return {}
    return line if isinstance(line, dict) else {}
