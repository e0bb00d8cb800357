"""SQS batches from the main queue: one read of the batch's keys, then partial batch response over
the per-record state machine."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from functions.common.clients import client, failure_mode_reader_from_env
from functions.common.config import env_int, env_str
from functions.common.events import EventPublisher
from functions.common.failure_mode import FailureModeReader
from functions.common.names import EnvVar
from functions.common.observability import bind_request_id, fields, logger, metrics, traced
from functions.common.state_table import StateRecord, StateTable
from functions.worker.dead_letters import DeadLetterQueue
from functions.worker.processor import ProcessingError, RecordProcessor, idempotency_key_of
from functions.worker.sqs_record import SqsRecord

DEFAULT_TTL_DAYS = 7

# The partial batch response: {"batchItemFailures": [{"itemIdentifier": <messageId>}, ...]}.
BatchResponse = dict[str, list[dict[str, str]]]


@dataclass(frozen=True)
class Dependencies:
    state: StateTable
    failure_modes: FailureModeReader
    conflict_events: EventPublisher
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
        conflict_events=EventPublisher(client("events"), env_str(EnvVar.EVENT_BUS_NAME)),
        dead_letters=DeadLetterQueue(client("sqs"), env_str(EnvVar.DLQ_URL)),
    )


def known_records(state: StateTable, event: dict[str, Any]) -> dict[str, StateRecord]:
    """The batch's keys as the table holds them, in one read; none when the read fails (every
    record then goes to its conditional write, which decides the same way, at a write's price)."""
    keys = [idempotency_key_of(SqsRecord(record)) for record in event.get("Records", [])]
    try:
        return state.read_many(keys)
    except (ClientError, BotoCoreError) as error:
        logger.warning("batch read failed; deciding by conditional writes", extra=fields(REASON=str(error)))
        return {}


def partial_batch_response(
    records: Iterable[dict[str, Any]], process: Callable[[SqsRecord], None]
) -> BatchResponse:
    """Every record through `process`, in order; each one that raises is reported for another
    delivery, the others are deleted by Lambda. A batch where every record fails is answered with
    every id (not an exception): the handler never fails as a whole because of its records.

    By hand where Powertools' BatchProcessor would do it: importing its package loads asyncio and
    the Kinesis, DynamoDB and Kafka record models (and every event class: sqs_record.py), about
    20 ms of this SQS-only worker's cold start (issue 14, docs/performance.md), for this loop. The
    contract is the AWS Lambda Developer Guide's, "Handling errors for an SQS event source in Lambda"
    (partial batch responses, with ReportBatchItemFailures on the mapping: tests/infra asserts it):
    each failed record's messageId as itemIdentifier; an empty list means the whole batch
    succeeded. The main queue is a standard queue, so every record is tried (a FIFO queue would need
    the batch to stop at its first failure, per the same guide).
    """
    failures = []
    for record in records:
        try:
            process(SqsRecord(record))
        except Exception as error:
            # Any failure of one record is that record's: it comes back, the batch goes on.
            failures.append({"itemIdentifier": record["messageId"]})
            if not isinstance(error, ProcessingError):
                # A processing error was logged with its errorType where it was recorded; anything
                # else (a state write that failed, a lease lost, no time left) says so here.
                logger.warning(
                    "record returned to the queue",
                    extra=fields(MESSAGE_ID=record["messageId"], REASON=f"{type(error).__name__}: {error}"),
                )
    return {"batchItemFailures": failures}


@logger.inject_lambda_context(clear_state=True)
@traced
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> BatchResponse:
    bind_request_id(context.aws_request_id)
    deps = dependencies()
    records = RecordProcessor(
        state=deps.state,
        # Once per batch: a throttled or slow parameter read costs one read, not one per record.
        mode=deps.failure_modes.current().mode,
        known=known_records(deps.state, event),
        conflict_events=deps.conflict_events,
        dead_letters=deps.dead_letters,
        remaining_ms=context.get_remaining_time_in_millis,
    )
    return partial_batch_response(event.get("Records", []), records.process)
