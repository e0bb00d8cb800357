"""Observability and drills: the alarm topic, alarms, dashboard, log metric filters, Logs Insights
queries, the FIS experiment templates and the pipeline's checks role.

The optional parts (queries, FIS templates, checks role) name what they use in the other stacks by
its deterministic name, never by reference: a reference is an export that CloudFormation will not
delete while this stack imports it, so turning one of them off would fail the other stack's update
(tests/infra/app/test_exports.py).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from app.components.alarms import (
    FIS_STOP_ALARMS,
    AlarmTopic,
    alarm_inbox_name,
    alarm_topic_name,
    stage_alarms,
)
from app.components.log_insights import LogMetrics, QueryDefinitions, queries_for
from app.config import StageConfig
from app.constructs.alarms import AlarmFactory
from app.constructs.dashboard import Dashboard
from app.constructs.fis_experiments import FisExperiments, configuration_bucket_name
from app.constructs.gameday_role import CheckedResources, GamedayRole
from app.constructs.lambda_fn import function_arn
from app.stacks.api_stack import ApiStack
from app.stacks.functions_stack import FunctionsStack
from app.stacks.state_stack import StateStack
from functions.common import names


class ObservabilityStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        state: StateStack,
        compute: FunctionsStack,
        api: ApiStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.alarm_topic = AlarmTopic(
            self,
            "AlarmTopic",
            stage_prefix=config.prefix,
            key=state.key,
            email=config.alarm_email,
            webhook_url=config.webhook_url,
        ).topic
        factory = AlarmFactory(
            self,
            "Alarms",
            name_prefix=config.prefix,
            period_seconds=config.alarms.period_seconds,
            evaluation_periods=config.alarms.evaluation_periods,
            runbooks_url=config.runbooks_url,
            topic=self.alarm_topic,
        )
        for spec in stage_alarms(
            queue=state.queue,
            dlq=state.dlq,
            worker=compute.worker.function,
            ingest=compute.ingest.function,
            relay=compute.relay.function,
            relay_failures=state.relay_failures,
            thresholds=config.alarms,
        ):
            factory.create(spec)
        self.alarms = factory.alarms

        LogMetrics(
            self,
            "LogMetrics",
            error_sources={
                "Ingest": compute.ingest.log_group,
                "Worker": compute.worker.log_group,
                "Redrive": compute.redrive.log_group,
            },
            # The worker's "record processed" lines are INFO: a stage that logs above INFO has none.
            processed_source=compute.worker.log_group if config.logs_record_outcomes else None,
        )
        if config.query_definitions_enabled:
            QueryDefinitions(
                self,
                "Queries",
                stage_prefix=config.prefix,
                log_group_names=[
                    fn.log_group_name
                    for fn in (
                        compute.ingest,
                        compute.worker,
                        compute.relay,
                        compute.redrive,
                        compute.reset,
                        compute.event_log,
                    )
                    if fn is not None
                ],
                files=queries_for(config.log_level),
            )
        self.dashboard = Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"{config.prefix}-dashboard",
            queues={
                "main": state.queue,
                "DLQ": state.dlq,
                "quarantine": state.quarantine_queue,
                "relay failures": state.relay_failures,
            },
            functions={
                "ingest": compute.ingest.function,
                "worker": compute.worker.function,
                "relay": compute.relay.function,
                "redrive": compute.redrive.function,
            },
            bus=compute.events.bus,
            rules=compute.events.rules,
            alarms=list(self.alarms.values()),
            processed_true=config.logs_record_outcomes,
            log_level=config.log_level,
        )
        self.fis: FisExperiments | None = None
        if config.fis_enabled:
            self.fis = FisExperiments(
                self,
                "FisExperiments",
                stage_prefix=config.prefix,
                bucket_name=configuration_bucket_name(
                    stage_prefix=config.prefix, account=config.account, region=config.region
                ),
                duration_minutes=config.fis_experiment_duration_minutes,
                target_function_arn=function_arn(self, compute.worker.function_name),
                target_timeout_seconds=config.worker_timeout_seconds,
                stop_alarms=[self.alarms[slug] for slug in FIS_STOP_ALARMS],
            )
        self.gameday_role: GamedayRole | None = None
        if config.pipeline_account:
            self.gameday_role = GamedayRole(
                self,
                "GamedayRole",
                stage_prefix=config.prefix,
                pipeline_account=config.pipeline_account,
                may_inject_failures=config.failure_injection_enabled,
                resources=CheckedResources(
                    failure_mode_parameter=names.FAILURE_MODE_PARAMETER,
                    queues=[
                        state.ingestion.queue_name,
                        state.ingestion.dlq_name,
                        state.redrive.quarantine_queue_name,
                    ],
                    audit_queue=compute.events.audit_queue_name,
                    alarm_topic=alarm_topic_name(config.prefix),
                    alarm_inbox=alarm_inbox_name(config.prefix),
                    worker_log_group=compute.worker.log_group_name,
                    state_table=state.state_table_name,
                    api_key_secret=api.api_key.secret_name if api.api_key else None,
                ),
                key=state.key,
            )

        outputs = {
            names.Output.ALARM_TOPIC_ARN: self.alarm_topic.topic_arn,
            names.Output.DASHBOARD_NAME: self.dashboard.dashboard.dashboard_name,
        }
        if self.gameday_role is not None:
            outputs[names.Output.GAMEDAY_ROLE_ARN] = self.gameday_role.role.role_arn
        self.outputs = {
            output: CfnOutput(self, output.value, value=value) for output, value in outputs.items()
        }
