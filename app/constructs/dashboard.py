"""The stage dashboard: queues, functions, EventBridge routing, the lab's own metrics and alarm states."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.common import names

_WIDTH = 8
_PERIOD = Duration.minutes(1)


def queue_metrics(queue: sqs.IQueue) -> dict[str, cloudwatch.Metric]:
    return {
        "visible": queue.metric_approximate_number_of_messages_visible(period=_PERIOD, statistic="Maximum"),
        "not visible": queue.metric_approximate_number_of_messages_not_visible(
            period=_PERIOD, statistic="Maximum"
        ),
        "age of oldest (s)": queue.metric_approximate_age_of_oldest_message(
            period=_PERIOD, statistic="Maximum"
        ),
    }


def matched_events(bus: events.IEventBus, rule: events.IRule) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace="AWS/Events",
        metric_name="MatchedEvents",
        dimensions_map={"EventBusName": bus.event_bus_name, "RuleName": rule.rule_name},
        statistic="Sum",
        period=_PERIOD,
    )


def lab_metric(
    name: names.MetricName | names.DeliveryMetricName, statistic: str = "Sum"
) -> cloudwatch.Metric:
    """A metric the functions emit with Powertools (EMF): namespace + the service dimension."""
    return cloudwatch.Metric(
        namespace=names.METRICS_NAMESPACE,
        metric_name=name.value,
        dimensions_map={"service": names.SERVICE_NAME},
        statistic=statistic,
        period=_PERIOD,
    )


class Dashboard(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dashboard_name: str,
        queues: Mapping[str, sqs.IQueue],
        functions: Mapping[str, lambda_.IFunction],
        bus: events.IEventBus,
        rules: Mapping[names.DetailType, events.IRule],
        alarms: Sequence[cloudwatch.IAlarm],
        processed_true: bool = True,
        log_level: str = "INFO",
    ) -> None:
        super().__init__(scope, construct_id)
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=dashboard_name, default_interval=Duration.hours(3)
        )
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=(
                    f"# {dashboard_name}\nQueues (for SQS the equivalent of iterator age is the age of the "
                    "oldest message), functions, EventBridge routing and the lab's own metrics."
                ),
                width=24,
                height=2,
            )
        )
        self.dashboard.add_widgets(
            *(
                cloudwatch.GraphWidget(
                    title=f"Queue {label}: visible / not visible / age of oldest",
                    left=[
                        m.with_(label=name) for name, m in queue_metrics(queue).items() if "age" not in name
                    ],
                    right=[queue_metrics(queue)["age of oldest (s)"].with_(label="age of oldest (s)")],
                    width=_WIDTH,
                )
                for label, queue in queues.items()
            )
        )
        function_widgets: list[cloudwatch.IWidget] = []
        for label, fn in functions.items():
            function_widgets.append(
                cloudwatch.GraphWidget(
                    title=f"Lambda {label}: invocations / errors / throttles / duration p95",
                    left=[
                        fn.metric_invocations(period=_PERIOD, label="invocations"),
                        fn.metric_errors(period=_PERIOD, label="errors"),
                        fn.metric_throttles(period=_PERIOD, label="throttles"),
                    ],
                    right=[fn.metric_duration(period=_PERIOD, statistic="p95", label="duration p95 (ms)")],
                    width=_WIDTH,
                )
            )
        self.dashboard.add_widgets(*function_widgets)
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="EventBridge matched events: success / failure",
                left=[matched_events(bus, rule).with_(label=detail.value) for detail, rule in rules.items()],
                width=_WIDTH,
            ),
            cloudwatch.GraphWidget(
                title="Worker: processed / failed / duplicates / inflight and idempotency conflicts",
                left=[
                    lab_metric(name).with_(label=name.value)
                    for name in (
                        names.MetricName.RECORDS_PROCESSED,
                        names.MetricName.RECORDS_FAILED,
                        names.MetricName.DUPLICATES_DETECTED,
                        names.MetricName.INFLIGHT_CONFLICTS,
                        names.MetricName.IDEMPOTENCY_CONFLICTS,
                    )
                ],
                width=_WIDTH,
            ),
            cloudwatch.GraphWidget(
                title="Ingest and redrive: accepted / rejected / moved / quarantined; deliveries",
                left=[
                    lab_metric(name).with_(label=name.value)
                    for name in (
                        names.MetricName.EVENTS_ACCEPTED,
                        names.MetricName.EVENTS_REJECTED,
                        names.MetricName.REDRIVE_MOVED,
                        names.MetricName.REDRIVE_QUARANTINED,
                    )
                ],
                right=[lab_metric(name).with_(label=name.value) for name in names.DeliveryMetricName],
                width=_WIDTH,
            ),
        )
        errors_by_type = [
            cloudwatch.Metric(
                namespace=names.METRICS_NAMESPACE,
                metric_name=names.MetricName.ERRORS_BY_TYPE.value,
                dimensions_map={names.LogField.ERROR_TYPE.value: error.value},
                statistic="Sum",
                period=_PERIOD,
                label=error.value,
            )
            for error in names.ErrorType
        ]
        log_filters: list[cloudwatch.IWidget] = [
            cloudwatch.GraphWidget(
                title="Log metric filters: processed=true and errors by type",
                left=[
                    cloudwatch.Metric(
                        namespace=names.METRICS_NAMESPACE,
                        metric_name=names.MetricName.PROCESSED_TRUE.value,
                        statistic="Sum",
                        period=_PERIOD,
                        label="processed=true",
                    ),
                    *errors_by_type,
                ],
                width=12,
            )
        ]
        if not processed_true:
            log_filters = [
                cloudwatch.GraphWidget(
                    title="Log metric filter: errors by type", left=errors_by_type, width=8, height=6
                ),
                cloudwatch.TextWidget(
                    markdown=(
                        f"**No processed=true filter**: this stage logs at {log_level}, so the worker "
                        f'writes no INFO "record processed" line. Processed records: the '
                        f"{names.MetricName.RECORDS_PROCESSED.value} metric (Worker widget)."
                    ),
                    width=4,
                    height=6,
                ),
            ]
        self.dashboard.add_widgets(
            *log_filters,
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(alarms), width=12),
        )
