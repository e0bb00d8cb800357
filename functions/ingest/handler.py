"""POST /events: the HTTP API's ingest function (wiring only; the logic is in service.py).

By hand, for its cold start, where Powertools offers a router and event classes: API Gateway sends
this function POST /events only (its one route, app/stacks/api_stack.py), so a router would route
nothing, and importing `aws_lambda_powertools.event_handler` loads every resolver it ships (AppSync
with asyncio, Bedrock, VPC Lattice, OpenAPI), and `aws_lambda_powertools.utilities.data_classes`
every event class of every service: together about a fifth of this function's import time
(docs/performance.md, "Cold-start imports"). The handler reads three fields of the payload format
2.0 request (body, isBase64Encoded, headers; header names arrive lowercased) and returns the format
2.0 response (statusCode, headers, body, isBase64Encoded): Amazon API Gateway Developer Guide,
"Create AWS Lambda proxy integrations for HTTP APIs in API Gateway". The response is, field for
field, what the Powertools resolver returned; tests/unit/functions/test_handler_imports.py keeps
both packages out.
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.clients import client, failure_mode_reader_from_env, optional_read_client
from functions.common.config import env_int, env_str
from functions.common.names import EnvVar, MetricName
from functions.common.observability import bind_request_id, count, fields, logger, metrics, traced
from functions.common.state_table import StateTable
from functions.ingest.service import DEFAULT_MAX_BODY_BYTES, IngestRejected, IngestService, PublishFailed

# The ingest only reads the state table: the TTL it would write with does not matter.
DEFAULT_TTL_DAYS = 7


@cache
def service() -> IngestService:
    """Built on the first request, once per container: importing needs no AWS and no env vars."""
    table_name = os.environ.get(EnvVar.TABLE_NAME.value)
    return IngestService(
        sqs_client=client("sqs"),
        queue_url=env_str(EnvVar.QUEUE_URL),
        failure_modes=failure_mode_reader_from_env(),
        # With the state table (GetItem only), a reused client key is refused with 409 at once;
        # without it the worker's checksum comparison is the only check (see IngestService).
        state=(
            StateTable(optional_read_client("dynamodb"), table_name, ttl_days=DEFAULT_TTL_DAYS)
            if table_name
            else None
        ),
        max_body_bytes=env_int(EnvVar.MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES, minimum=2),
    )


def _json(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "body": json.dumps(body),
        "isBase64Encoded": False,
        "headers": {"Content-Type": "application/json"},
        "cookies": [],
    }


def post_event(event: dict[str, Any]) -> dict[str, Any]:
    accepted = service().accept(
        body=event.get("body"),
        is_base64_encoded=bool(event.get("isBase64Encoded")),
        headers=event.get("headers") or {},
    )
    count(MetricName.EVENTS_ACCEPTED)
    logger.info(
        "event accepted",
        extra=fields(
            IDEMPOTENCY_KEY=accepted.idempotency_key,
            MESSAGE_ID=accepted.message_id,
            DUPLICATE_MESSAGE_ID=accepted.duplicate_message_id,
            ERROR_TYPE_CANDIDATE=accepted.error_type_candidate,
        ),
    )
    body = {"idempotencyKey": accepted.idempotency_key, "messageId": accepted.message_id}
    if accepted.duplicate_message_id:
        body["duplicateMessageId"] = accepted.duplicate_message_id
    return _json(202, body)


def rejected(error: IngestRejected) -> dict[str, Any]:
    count(MetricName.EVENTS_REJECTED)
    logger.info(
        "event rejected", extra=fields(HTTP_STATUS=error.status, ERROR_CODE=error.code, REASON=error.message)
    )
    body = {"error": error.code, "message": error.message}
    if error.field is not None:
        body["field"] = error.field
    return _json(error.status, body)


def publish_failed() -> dict[str, Any]:
    logger.exception("queue did not accept the event")
    return _json(
        503, {"error": "unavailable", "message": "the event was not queued; retry with the same body"}
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@traced
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    bind_request_id(context.aws_request_id)
    # The two typed outcomes of bad input and of a queue that did not answer; anything else is a
    # defect and fails the invocation (API Gateway answers 500), as it did under the resolver.
    try:
        return post_event(event)
    except IngestRejected as error:
        return rejected(error)
    except PublishFailed:
        return publish_failed()
