"""The worker: consumes the ingestion queue in batches, records each key's state, publishes events."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from app.components.failure_switch import FailureSwitch
from app.constructs.fis_experiments import FisLambdaTarget
from app.constructs.lambda_fn import CONSUME, SEND, FunctionSettings, LambdaFn
from app.constructs.nag import suppress
from functions.common import names


class WorkerFunction(LambdaFn):
    """The worker function, its SQS event source (partial batch responses), and, when FIS drills
    target it, the FIS extension."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: FunctionSettings,
        timeout_seconds: int,
        queue: sqs.IQueue,
        dlq: sqs.IQueue,
        batch_size: int,
        max_batching_window_seconds: int,
        max_concurrency: int,
        reserved_concurrency: int | None,
        state_table: dynamodb.ITable,
        ttl_days: int,
        bus: events.IEventBus,
        switch: FailureSwitch,
        fis_configuration_bucket: str | None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            settings=functions,
            name="worker",
            handler=names.Handler.WORKER,
            description="Consumes the queue: idempotent processing, partial batch response, events",
            timeout_seconds=timeout_seconds,
            environment={
                names.EnvVar.TABLE_NAME: state_table.table_name,
                names.EnvVar.DLQ_URL: dlq.queue_url,
                names.EnvVar.EVENT_BUS_NAME: bus.event_bus_name,
                names.EnvVar.TTL_DAYS: str(ttl_days),
                **switch.environment,
            },
            reserved_concurrency=reserved_concurrency,
        )
        # The worker claims and settles records with conditional UpdateItem only (no PutItem, no GetItem).
        self.grant_table(["dynamodb:UpdateItem"], state_table)
        switch.grant_read(self)
        self.allow(["events:PutEvents"], [bus.event_bus_arn])
        self.grant_queue(CONSUME, queue)
        # An IdempotencyConflict is parked in the DLQ at once (a retry could never succeed).
        self.grant_queue(SEND, dlq)
        self.event_source = lambda_.EventSourceMapping(
            self,
            "EventSource",
            target=self.function,
            event_source_arn=queue.queue_arn,
            batch_size=batch_size,
            max_batching_window=Duration.seconds(max_batching_window_seconds),
            report_batch_item_failures=True,
            max_concurrency=max_concurrency,
        )
        suppress(
            self.event_source,
            "Serverless-LambdaEventSourceMappingDestination",
            "SQS event sources cannot have an on-failure destination; failed messages go to the queue's DLQ",
        )
        self.fis: FisLambdaTarget | None = None
        if fis_configuration_bucket is not None:
            self.fis = FisLambdaTarget(
                self, "Fis", bucket_name=fis_configuration_bucket, architecture=functions.architecture
            )
            self.fis.attach(self)
