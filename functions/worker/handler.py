"""SQS batches from the main queue: partial batch response over the per-record state machine."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.clients import client, failure_mode_reader_from_env
from functions.common.config import env_int, env_str
from functions.common.failure_mode import FailureModeReader
from functions.common.names import EnvVar
from functions.common.observability import bind_request_id, logger, metrics, tracer
from functions.common.state_table import StateTable
from functions.worker.dead_letters import DeadLetterQueue
from functions.worker.events import EventBatch
from functions.worker.processor import RecordProcessor

DEFAULT_TTL_DAYS = 7

# A batch where every record fails is answered with every id in batchItemFailures (not an
# exception): the handler never fails as a whole because of its records.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@dataclass(frozen=True)
class Dependencies:
    state: StateTable
    failure_modes: FailureModeReader
    events_client: Any
    bus_name: str
    dead_letters: DeadLetterQueue


@cache
def dependencies() -> Dependencies:
    """Built on the first invocation, once per container: importing needs no AWS and no env vars."""
    return Dependencies(
        state=StateTable(
            client("dynamodb"),
            env_str(EnvVar.TABLE_NAME),
            ttl_days=env_int(EnvVar.TTL_DAYS, DEFAULT_TTL_DAYS, minimum=1),
        ),
        failure_modes=failure_mode_reader_from_env(),
        events_client=client("events"),
        bus_name=env_str(EnvVar.EVENT_BUS_NAME),
        dead_letters=DeadLetterQueue(client("sqs"), env_str(EnvVar.DLQ_URL)),
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    bind_request_id(context.aws_request_id)
    deps = dependencies()
    events = EventBatch(deps.events_client, deps.bus_name)
    records = RecordProcessor(
        state=deps.state,
        # Once per batch: a throttled or slow parameter read costs one read, not one per record.
        mode=deps.failure_modes.current().mode,
        events=events,
        dead_letters=deps.dead_letters,
        remaining_ms=context.get_remaining_time_in_millis,
    )
    try:
        response = process_partial_response(
            event=event, record_handler=records.process, processor=processor, context=context
        )
    finally:
        events.publish()
    return with_unpublished_as_failures(response, events.unpublished_message_ids)


def with_unpublished_as_failures(
    response: PartialItemFailureResponse, unpublished_message_ids: list[str]
) -> PartialItemFailureResponse:
    """A record whose event EventBridge refused comes back, and its redelivery re-sends the event."""
    failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
    for message_id in dict.fromkeys(unpublished_message_ids):
        if message_id not in failed:
            response["batchItemFailures"].append({"itemIdentifier": message_id})
    return response
