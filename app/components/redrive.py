"""Redrive: the API and asynchronous jobs that move dead-lettered messages back to the main queue,
with storm protection (a message redriven too often is parked in the quarantine queue).

The component's state (the jobs table and the quarantine queue) lives in the stage's state stack
(RedriveStore) and its function in the functions stack (RedriveFunction).
"""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from app.constructs.lambda_fn import CONSUME_AND_HOLD, SEND, FunctionSettings, LambdaFn, function_arn
from app.constructs.nag import suppress
from app.constructs.queues import parking_queue
from app.constructs.tables import durable_table
from functions.common import names


class RedriveStore(Construct):
    """The redrive jobs table, and the quarantine queue where messages redriven
    maxRedrivesPerMessage times park instead of looping DLQ -> main -> DLQ (only an operator moves
    them on)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage_prefix: str,
        jobs_table_name: str,
        key: kms.IKey | None,
        max_message_size_bytes: int,
        protect: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.quarantine_queue_name = f"{stage_prefix}-quarantine"
        self.quarantine_queue = parking_queue(
            self,
            "QuarantineQueue",
            queue_name=self.quarantine_queue_name,
            key=key,
            max_message_size_bytes=max_message_size_bytes,
            reason="the quarantine is the terminal parking queue of redrive storm protection; it has no "
            "consumer",
        )
        self.jobs_table = durable_table(
            self,
            "JobsTable",
            table_name=jobs_table_name,
            partition_key=names.REDRIVE_JOBS_PARTITION_KEY,
            ttl_attribute=names.REDRIVE_JOBS_TTL_ATTRIBUTE,
            key=key,
            protect=protect,
        )


class RedriveFunction(LambdaFn):
    """Serves /redrive/* and runs each job in an asynchronous self-invocation."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: FunctionSettings,
        timeout_seconds: int,
        queue: sqs.IQueue,
        dlq: sqs.IQueue,
        store: RedriveStore,
        state_table: dynamodb.ITable,
        max_redrives_per_message: int,
        max_messages_per_second: int,
        ttl_days: int,
        failure_queue: sqs.IQueue,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            settings=functions,
            name="redrive",
            handler=names.Handler.REDRIVE,
            description="Redrive API (preview/start/cancel/status) and the asynchronous redrive jobs",
            timeout_seconds=timeout_seconds,
            environment={
                names.EnvVar.QUEUE_URL: queue.queue_url,
                names.EnvVar.DLQ_URL: dlq.queue_url,
                names.EnvVar.QUARANTINE_QUEUE_URL: store.quarantine_queue.queue_url,
                names.EnvVar.TABLE_NAME: state_table.table_name,
                names.EnvVar.REDRIVE_JOBS_TABLE_NAME: store.jobs_table.table_name,
                names.EnvVar.MAX_REDRIVES_PER_MESSAGE: str(max_redrives_per_message),
                names.EnvVar.REDRIVE_MAX_MESSAGES_PER_SECOND: str(max_messages_per_second),
                names.EnvVar.TTL_DAYS: str(ttl_days),
            },
            # Lambda retries a failed asynchronous invocation twice (Lambda Developer Guide, "Error
            # handling and automatic retries"). Safe here: a job has one runner at a time (a lease
            # taken with conditional writes), so a retry resumes a job whose hand-over failed and
            # never runs it twice; after the retries the event goes to the failure queue.
            async_retry_attempts=2,
            async_failure_queue=failure_queue,
        )
        self.grant_queue(CONSUME_AND_HOLD, dlq)
        self.grant_queue(SEND, queue, store.quarantine_queue)
        self.grant_table(["dynamodb:GetItem", "dynamodb:UpdateItem"], state_table)
        self.grant_table(["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem"], store.jobs_table)
        # Built from the function name rather than a reference to the function: the function
        # depends on its role's policy, so a reference here would be a circular dependency.
        self.allow(["lambda:InvokeFunction"], [function_arn(self, self.function_name)])
        if failure_queue.encryption_master_key is not None:
            for finding in (
                "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
                "AwsSolutions-IAM5[Action::kms:ReEncrypt*]",
            ):
                suppress(
                    self.role,
                    finding,
                    "granted by CDK for the on-failure destination queue, which the stage key encrypts; "
                    "the statement is limited to that one key",
                )
