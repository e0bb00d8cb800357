"""Compute and event routing: the functions, the worker's SQS event source and the event bus."""

from __future__ import annotations

from typing import Any

from aws_cdk import ArnFormat, CfnOutput, Duration, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from app.config import StageConfig
from app.constructs.event_bus import EventBus, failure_queue
from app.constructs.fis_experiments import FisLambdaTarget
from app.constructs.lambda_fn import LambdaFn
from app.constructs.nag import suppress
from app.stacks.queue_stack import QueueStack
from functions.common import names

E = names.EnvVar


class FunctionsStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: StageConfig, state: QueueStack, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.outputs: dict[names.Output, CfnOutput] = {}
        parameter_arn = state.failure_mode_parameter.parameter_arn
        failure_mode_env = {
            E.FAILURE_MODE_PARAMETER: names.FAILURE_MODE_PARAMETER,
            E.FAILURE_MODE_CACHE_SECONDS: str(config.failure_mode_cache_seconds),
            E.FAILURE_INJECTION_ENABLED: str(config.failure_injection_enabled).lower(),
            E.FAILURE_MODE_MAX_TTL_SECONDS: str(config.failure_mode_max_ttl_seconds),
        }
        queue_key = [state.key.key_arn] if state.key else []

        self.delivery_dlq = failure_queue(self, config, state.key)
        self.event_log = LambdaFn(
            self,
            "EventLog",
            config=config,
            name="event-log",
            handler=names.Handler.EVENT_LOG,
            description="Logs IngestionSuccess/IngestionFailure events as structured JSON",
            timeout_seconds=10,
            async_failure_queue=self.delivery_dlq,
        )
        if state.key:
            # Lambda writes failed asynchronous events to the encrypted DLQ with the function's role.
            self.event_log.allow(["kms:GenerateDataKey", "kms:Decrypt"], queue_key)
        self.event_bus = EventBus(
            self,
            "Events",
            config=config,
            key=state.key,
            delivery_dlq=self.delivery_dlq,
            event_log_function=self.event_log.function,
        )

        self.ingest = LambdaFn(
            self,
            "Ingest",
            config=config,
            name="ingest",
            handler=names.Handler.INGEST,
            description="POST /events: validates, stamps an idempotencyKey and enqueues",
            timeout_seconds=config.ingest_timeout_seconds,
            environment={
                E.QUEUE_URL: state.queue.queue_url,
                E.MAX_BODY_BYTES: str(config.max_body_bytes),
                **failure_mode_env,
            },
        )
        self.ingest.allow(["sqs:SendMessage"], [state.queue.queue_arn])
        self.ingest.allow(["ssm:GetParameter"], [parameter_arn])
        if state.key:
            self.ingest.allow(["kms:GenerateDataKey", "kms:Decrypt"], queue_key)

        fis_target = FisLambdaTarget(self, "Fis", config=config) if config.fis_enabled else None
        self.fis_target = fis_target
        self.worker = LambdaFn(
            self,
            "Worker",
            config=config,
            name="worker",
            handler=names.Handler.WORKER,
            description="Consumes the queue: idempotent processing, partial batch response, events",
            timeout_seconds=config.worker_timeout_seconds,
            environment={
                E.TABLE_NAME: state.state_table.table_name,
                E.EVENT_BUS_NAME: self.event_bus.bus.event_bus_name,
                E.TTL_DAYS: str(config.ttl_days),
                **failure_mode_env,
            },
            extra_environment=fis_target.environment if fis_target else None,
            extra_layers=[fis_target.layer] if fis_target else (),
            reserved_concurrency=config.worker_reserved_concurrency,
        )
        # The worker claims and settles records with conditional UpdateItem only (no PutItem, no GetItem).
        self.worker.allow(["dynamodb:UpdateItem"], [state.state_table.table_arn])
        self.worker.allow(["ssm:GetParameter"], [parameter_arn])
        self.worker.allow(["events:PutEvents"], [self.event_bus.bus.event_bus_arn])
        # What the SQS event source mapping itself calls with the worker's role.
        self.worker.allow(
            ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"], [state.queue.queue_arn]
        )
        if state.key:
            self.worker.allow(["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"], queue_key)
        if fis_target:
            fis_target.allow_extension(self.worker)
        self.event_source = lambda_.EventSourceMapping(
            self,
            "WorkerEventSource",
            target=self.worker.function,
            event_source_arn=state.queue.queue_arn,
            batch_size=config.batch_size,
            max_batching_window=Duration.seconds(config.max_batching_window_seconds),
            report_batch_item_failures=True,
            max_concurrency=config.worker_max_concurrency,
        )
        suppress(
            self.event_source,
            "Serverless-LambdaEventSourceMappingDestination",
            "SQS event sources cannot have an on-failure destination; failed messages go to the queue's DLQ",
        )

        redrive_name = f"{config.prefix}-redrive"
        self.redrive = LambdaFn(
            self,
            "Redrive",
            config=config,
            name="redrive",
            handler=names.Handler.REDRIVE,
            description="Redrive API (preview/start/cancel/status) and the asynchronous redrive jobs",
            timeout_seconds=config.redrive_timeout_seconds,
            environment={
                E.QUEUE_URL: state.queue.queue_url,
                E.DLQ_URL: state.dlq.queue_url,
                E.QUARANTINE_QUEUE_URL: state.quarantine_queue.queue_url,
                E.TABLE_NAME: state.state_table.table_name,
                E.REDRIVE_JOBS_TABLE_NAME: state.jobs_table.table_name,
                E.MAX_REDRIVES_PER_MESSAGE: str(config.max_redrives_per_message),
                E.REDRIVE_MAX_MESSAGES_PER_SECOND: str(config.redrive_max_messages_per_second),
                E.TTL_DAYS: str(config.ttl_days),
            },
            # A job must never run twice: an asynchronous invocation that fails is not retried,
            # the job record shows FAILED and the operator starts a new one.
            async_retry_attempts=0,
            async_failure_queue=self.delivery_dlq,
        )
        self.redrive.allow(
            [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
            ],
            [state.dlq.queue_arn],
        )
        self.redrive.allow(["sqs:SendMessage"], [state.queue.queue_arn, state.quarantine_queue.queue_arn])
        self.redrive.allow(["dynamodb:GetItem", "dynamodb:UpdateItem"], [state.state_table.table_arn])
        self.redrive.allow(
            ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem"], [state.jobs_table.table_arn]
        )
        # Built from the function name rather than a reference to the function: the function
        # depends on its role's policy, so a reference here would be a circular dependency.
        self_arn = self.format_arn(
            service="lambda",
            resource="function",
            resource_name=redrive_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.redrive.allow(["lambda:InvokeFunction"], [self_arn])
        if state.key:
            self.redrive.allow(["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"], queue_key)
            for finding in (
                "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
                "AwsSolutions-IAM5[Action::kms:ReEncrypt*]",
            ):
                suppress(
                    self.redrive.role,
                    finding,
                    "granted by CDK for the on-failure destination queue, which the stage key encrypts; the "
                    "statement is limited to that one key",
                )

        self.reset = LambdaFn(
            self,
            "Reset",
            config=config,
            name="reset",
            handler=names.Handler.RESET,
            description="Sets /ingestion/failure_mode back to none",
            timeout_seconds=10,
            environment=failure_mode_env,
        )
        self.reset.allow(["ssm:PutParameter"], [parameter_arn])

        for output, value in (
            (names.Output.EVENT_BUS_NAME, self.event_bus.bus.event_bus_name),
            (names.Output.SUCCESS_TOPIC_ARN, self.event_bus.topics[names.DetailType.SUCCESS].topic_arn),
            (names.Output.FAILURE_TOPIC_ARN, self.event_bus.topics[names.DetailType.FAILURE].topic_arn),
            (names.Output.EVENT_AUDIT_QUEUE_URL, self.event_bus.audit_queue.queue_url),
            (names.Output.INGEST_FUNCTION_NAME, self.ingest.function.function_name),
            (names.Output.WORKER_FUNCTION_NAME, self.worker.function.function_name),
            (names.Output.REDRIVE_FUNCTION_NAME, self.redrive.function.function_name),
            (names.Output.RESET_FUNCTION_NAME, self.reset.function.function_name),
        ):
            self.outputs[output] = CfnOutput(self, output.value, value=value)
