"""What drills read besides the stage client's views: AWS/Lambda errors, the worker's own EMF
counters, the table's size, and the quarantine queue's messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from functions.common.names import METRICS_NAMESPACE, MessageAttribute, MetricName, Output
from lab.gamedays.runner import DrillContext
from stage_client.status import count_records


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

    def wait_for_processed(self, expected: int) -> tuple[float, float]:
        """(RecordsProcessed, DuplicatesDetected) once the metrics account for `expected` records."""
        processed = self.wait_for(MetricName.RECORDS_PROCESSED, expected)
        return processed, self.delta(MetricName.DUPLICATES_DETECTED)


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
