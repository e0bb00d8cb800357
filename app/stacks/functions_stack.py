"""Compute and event routing: the ingest, worker, relay, redrive and reset functions and the event bus."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from app.components.events import EventRouting
from app.components.failure_switch import FailureSwitch, ResetFunction
from app.components.ingest import IngestFunction
from app.components.redrive import RedriveFunction
from app.components.relay import RelayFunction
from app.components.worker import WorkerFunction
from app.config import StageConfig
from app.constructs.fis_experiments import configuration_bucket_name
from app.constructs.lambda_fn import FunctionSettings
from app.stacks.state_stack import StateStack
from functions.common import names


class FunctionsStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        functions: FunctionSettings,
        state: StateStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        switch = FailureSwitch(
            parameter=state.failure_mode_parameter,
            cache_seconds=config.failure_mode_cache_seconds,
            injection_enabled=config.failure_injection_enabled,
            max_ttl_seconds=config.failure_mode_max_ttl_seconds,
        )
        self.events = EventRouting(
            self,
            "Events",
            functions=functions,
            key=state.key,
            audit=config.event_audit,
            success_topic=config.success_topic,
        )
        self.ingest = IngestFunction(
            self,
            "Ingest",
            functions=functions,
            timeout_seconds=config.ingest_timeout_seconds,
            max_body_bytes=config.max_body_bytes,
            queue=state.queue,
            state_table=state.state_table,
            switch=switch,
        )
        self.worker = WorkerFunction(
            self,
            "Worker",
            functions=functions,
            timeout_seconds=config.worker_timeout_seconds,
            queue=state.queue,
            dlq=state.dlq,
            batch_size=config.batch_size,
            max_batching_window_seconds=config.max_batching_window_seconds,
            max_concurrency=config.worker_max_concurrency,
            reserved_concurrency=config.worker_reserved_concurrency,
            state_table=state.state_table,
            ttl_days=config.ttl_days,
            bus=self.events.bus,
            switch=switch,
            fis_configuration_bucket=configuration_bucket_name(
                stage_prefix=config.prefix, account=config.account, region=config.region
            )
            if config.fis_enabled
            else None,
        )
        self.redrive = RedriveFunction(
            self,
            "Redrive",
            functions=functions,
            timeout_seconds=config.redrive_timeout_seconds,
            queue=state.queue,
            dlq=state.dlq,
            store=state.redrive,
            state_table=state.state_table,
            max_redrives_per_message=config.max_redrives_per_message,
            max_messages_per_second=config.redrive_max_messages_per_second,
            ttl_days=config.ttl_days,
            failure_queue=self.events.delivery_dlq,
        )
        self.relay = RelayFunction(
            self,
            "Relay",
            functions=functions,
            state_table=state.state_table,
            bus=self.events.bus,
            failure_queue=state.relay_failures,
        )
        self.reset = ResetFunction(self, "Reset", functions=functions, switch=switch)
        self.event_log = self.events.event_log

        outputs = {
            names.Output.EVENT_BUS_NAME: self.events.bus.event_bus_name,
            names.Output.FAILURE_TOPIC_ARN: self.events.topics[names.DetailType.FAILURE].topic_arn,
            names.Output.INGEST_FUNCTION_NAME: self.ingest.function.function_name,
            names.Output.WORKER_FUNCTION_NAME: self.worker.function.function_name,
            names.Output.REDRIVE_FUNCTION_NAME: self.redrive.function.function_name,
            names.Output.RELAY_FUNCTION_NAME: self.relay.function.function_name,
            names.Output.RESET_FUNCTION_NAME: self.reset.function.function_name,
        }
        # A stage without a success topic (successTopic false) has no such output.
        if names.DetailType.SUCCESS in self.events.topics:
            outputs[names.Output.SUCCESS_TOPIC_ARN] = self.events.topics[names.DetailType.SUCCESS].topic_arn
        # A stage without the event audit has no such output; the clients that count events say
        # so by the stage key (stage_client.audit.require_event_audit).
        if self.events.audit_queue is not None:
            outputs[names.Output.EVENT_AUDIT_QUEUE_URL] = self.events.audit_queue.queue_url
        self.outputs: dict[names.Output, CfnOutput] = {
            output: CfnOutput(self, output.value, value=value) for output, value in outputs.items()
        }
