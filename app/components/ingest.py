"""The ingest function (POST /events): validates a request, stamps an idempotency key, enqueues it."""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from app.components.failure_switch import FailureSwitch
from app.constructs.lambda_fn import SEND, FunctionSettings, LambdaFn
from functions.common import names


class IngestFunction(LambdaFn):
    """Sends to the ingestion queue; reads the failure switch (the duplicate_submit mode lives here)
    and a client key's state record (a key reused with another payload is refused with 409)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: FunctionSettings,
        timeout_seconds: int,
        max_body_bytes: int,
        queue: sqs.IQueue,
        state_table: dynamodb.ITable,
        switch: FailureSwitch,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            settings=functions,
            name="ingest",
            handler=names.Handler.INGEST,
            description="POST /events: validates, stamps an idempotencyKey and enqueues",
            timeout_seconds=timeout_seconds,
            environment={
                names.EnvVar.QUEUE_URL: queue.queue_url,
                names.EnvVar.TABLE_NAME: state_table.table_name,
                names.EnvVar.MAX_BODY_BYTES: str(max_body_bytes),
                **switch.environment,
            },
        )
        self.grant_queue(SEND, queue)
        # One read of a client key's record, to refuse a conflicting payload before it is queued.
        self.grant_table(["dynamodb:GetItem"], state_table)
        switch.grant_read(self)
