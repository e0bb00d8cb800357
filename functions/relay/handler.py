"""The relay: the state table's stream in, IngestionSuccess / IngestionFailure events out.

Invoked by its DynamoDB stream event source mapping with a batch of records, or by an operator
with an on-failure record of that mapping (functions/relay/relay.py).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.clients import client
from functions.common.config import env_str
from functions.common.events import EventPublisher
from functions.common.names import EnvVar
from functions.common.observability import bind_request_id, logger, metrics, traced
from functions.relay.relay import BATCH_INFO_KEY, Relay, StreamBatch


@cache
def relay() -> Relay:
    """Built on the first invocation, once per container: importing needs no AWS and no env vars."""
    return Relay(EventPublisher(client("events"), env_str(EnvVar.EVENT_BUS_NAME)), client("dynamodbstreams"))


@logger.inject_lambda_context(clear_state=True)
@traced
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    bind_request_id(context.aws_request_id)
    if BATCH_INFO_KEY in event:
        return relay().replay(StreamBatch.from_failure_record(event)).to_dict()
    return relay().publish(event.get("Records", []))
