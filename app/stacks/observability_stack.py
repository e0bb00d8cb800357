"""Observability and drills: alarm topic, alarms, dashboard, log metric filters, Logs Insights queries,
the FIS experiment templates and the pipeline's gameday role."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from app.config import StageConfig
from app.constructs.alarms import AlarmFactory, AlarmSpec
from app.constructs.dashboard import Dashboard, lab_metric
from app.constructs.event_bus import secure_topic
from app.constructs.fis_experiments import FisExperiments
from app.constructs.gameday_role import GamedayRole
from app.constructs.lambda_fn import REPO_ROOT, LambdaFn
from app.constructs.nag import suppress
from app.constructs.sqs_with_dlq import Writers, secure_queue
from app.stacks.api_stack import ApiStack
from app.stacks.functions_stack import FunctionsStack
from app.stacks.queue_stack import QueueStack
from functions.common import names

QUERIES_DIR = REPO_ROOT / "ops" / "queries" / "cloudwatch-insights"
# Alarms that mean a drill went beyond its blast radius (messages dead-lettered or backing up):
# they stop FIS experiments. Worker errors are the drills' intended effect, so they do not.
FIS_STOP_ALARMS = ("dlq-depth", "dlq-age", "main-queue-age")


def query_files(folder: Path = QUERIES_DIR) -> list[Path]:
    """The Logs Insights queries to deploy (none yet is fine: the folder is filled by ops work)."""
    return sorted(folder.glob("*.txt")) if folder.is_dir() else []


class ObservabilityStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        state: QueueStack,
        compute: FunctionsStack,
        api: ApiStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.outputs: dict[names.Output, CfnOutput] = {}
        self.alarm_topic = secure_topic(
            self, "AlarmTopic", topic_name=f"{config.prefix}-alarms", key=state.key
        )
        if config.alarm_email or config.webhook_url:
            # Notifications that email/webhook endpoints reject are kept here, not dropped.
            notification_dlq = secure_queue(
                self,
                "AlarmNotificationDlq",
                queue_name=f"{config.prefix}-alarm-notification-dlq",
                retention=Duration.days(14),
                key=state.key,
                writers=Writers.AWS_SERVICES,
            )
            reason = "this queue is itself the dead-letter queue of the alarm topic's subscriptions"
            suppress(notification_dlq, "AwsSolutions-SQS3", reason)
            suppress(notification_dlq, "Serverless-SQSRedrivePolicy", reason)
            if config.alarm_email:
                self.alarm_topic.add_subscription(
                    subscriptions.EmailSubscription(config.alarm_email, dead_letter_queue=notification_dlq)
                )
            if config.webhook_url:
                self.alarm_topic.add_subscription(
                    subscriptions.UrlSubscription(config.webhook_url, dead_letter_queue=notification_dlq)
                )

        factory = AlarmFactory(self, "Alarms", config=config, topic=self.alarm_topic)
        self.alarms = factory.alarms
        thresholds = config.alarms
        for spec in (
            AlarmSpec(
                "dlq-depth",
                state.dlq.metric_approximate_number_of_messages_visible(statistic="Maximum"),
                thresholds.dlq_visible_threshold,
                "Messages are in the dead-letter queue",
                "poison-pill",
            ),
            AlarmSpec(
                "dlq-age",
                state.dlq.metric_approximate_age_of_oldest_message(statistic="Maximum"),
                thresholds.dlq_age_seconds,
                "The oldest dead-lettered message is waiting for a redrive",
                "poison-pill",
            ),
            AlarmSpec(
                "main-queue-age",
                state.queue.metric_approximate_age_of_oldest_message(statistic="Maximum"),
                thresholds.main_queue_age_seconds,
                "The ingestion queue is falling behind (age of oldest message)",
                "backlog",
            ),
            AlarmSpec(
                "main-queue-visible",
                state.queue.metric_approximate_number_of_messages_visible(statistic="Maximum"),
                thresholds.main_queue_visible_threshold,
                "The ingestion queue backlog is growing (visible messages)",
                "backlog",
            ),
            AlarmSpec(
                "worker-errors",
                compute.worker.function.metric_errors(statistic="Sum"),
                thresholds.lambda_errors_threshold,
                "The worker function fails (whole batches return to the queue)",
                "timeout-vs-visibility",
            ),
            AlarmSpec(
                "worker-throttles",
                compute.worker.function.metric_throttles(statistic="Sum"),
                thresholds.lambda_throttles_threshold,
                "The worker function is throttled",
                "throttling",
            ),
            AlarmSpec(
                "ingest-errors",
                compute.ingest.function.metric_errors(statistic="Sum"),
                thresholds.lambda_errors_threshold,
                "The ingest function fails (callers get 5xx)",
                "poison-pill",
            ),
            AlarmSpec(
                "ingest-throttles",
                compute.ingest.function.metric_throttles(statistic="Sum"),
                thresholds.lambda_throttles_threshold,
                "The ingest function is throttled (callers get 429/5xx)",
                "throttling",
            ),
            AlarmSpec(
                "redrive-quarantined",
                lab_metric(names.MetricName.REDRIVE_QUARANTINED),
                thresholds.quarantine_threshold,
                "Redrive quarantined messages that reached maxRedrivesPerMessage",
                "redrive-quarantine",
            ),
        ):
            factory.create(spec)

        self._metric_filters(compute)
        if config.query_definitions_enabled:
            self._query_definitions(config, compute)

        functions = {"ingest": compute.ingest, "worker": compute.worker, "redrive": compute.redrive}
        self.dashboard = Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"{config.prefix}-dashboard",
            queues={"main": state.queue, "DLQ": state.dlq, "quarantine": state.quarantine_queue},
            functions={label: fn.function for label, fn in functions.items()},
            bus=compute.event_bus.bus,
            rules=compute.event_bus.rules,
            alarms=list(self.alarms.values()),
        )

        self.fis: FisExperiments | None = None
        if config.fis_enabled and compute.fis_target is not None:
            self.fis = FisExperiments(
                self,
                "FisExperiments",
                config=config,
                target_function=compute.worker.function,
                stop_alarms=[self.alarms[slug] for slug in FIS_STOP_ALARMS],
            )

        self.gameday_role: GamedayRole | None = None
        if config.pipeline_account:
            self.gameday_role = GamedayRole(
                self,
                "GamedayRole",
                config=config,
                pipeline_account=config.pipeline_account,
                failure_mode_parameter=state.failure_mode_parameter,
                queues=[state.queue, state.dlq, state.quarantine_queue],
                audit_queue=compute.event_bus.audit_queue,
                state_table=state.state_table,
                api_key_secret=api.api_key_secret,
                key=state.key,
            )
            self.outputs[names.Output.GAMEDAY_ROLE_ARN] = CfnOutput(
                self, names.Output.GAMEDAY_ROLE_ARN.value, value=self.gameday_role.role.role_arn
            )

        for output, value in (
            (names.Output.ALARM_TOPIC_ARN, self.alarm_topic.topic_arn),
            (names.Output.DASHBOARD_NAME, self.dashboard.dashboard.dashboard_name),
        ):
            self.outputs[output] = CfnOutput(self, output.value, value=value)

    def _metric_filters(self, compute: FunctionsStack) -> None:
        error_type = names.LogField.ERROR_TYPE.value
        sources: tuple[tuple[str, LambdaFn], ...] = (
            ("Ingest", compute.ingest),
            ("Worker", compute.worker),
            ("Redrive", compute.redrive),
        )
        for label, fn in sources:
            logs.MetricFilter(
                self,
                f"{label}ErrorsByType",
                log_group=fn.log_group,
                metric_namespace=names.METRICS_NAMESPACE,
                metric_name=names.MetricName.ERRORS_BY_TYPE.value,
                filter_pattern=logs.FilterPattern.exists(f"$.{error_type}"),
                metric_value="1",
                dimensions={error_type: f"$.{error_type}"},
            )
        logs.MetricFilter(
            self,
            "WorkerProcessedTrue",
            log_group=compute.worker.log_group,
            metric_namespace=names.METRICS_NAMESPACE,
            metric_name=names.MetricName.PROCESSED_TRUE.value,
            filter_pattern=logs.FilterPattern.boolean_value(f"$.{names.LogField.PROCESSED.value}", True),
            metric_value="1",
        )

    def _query_definitions(self, config: StageConfig, compute: FunctionsStack) -> None:
        log_groups = [
            fn.log_group.log_group_name
            for fn in (compute.ingest, compute.worker, compute.redrive, compute.reset, compute.event_log)
        ]
        for path in query_files():
            logs.CfnQueryDefinition(
                self,
                f"Query-{path.stem}",
                name=f"{config.prefix}/{path.stem}",
                query_string=path.read_text(encoding="utf-8").strip(),
                log_group_names=log_groups,
            )
