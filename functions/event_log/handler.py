"""Target of the EventBridge rules: logs each IngestionSuccess / IngestionFailure event as structured JSON."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.names import EventDetailField
from functions.common.observability import bind_request_id, fields, logger


@logger.inject_lambda_context(clear_state=True)
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    bind_request_id(context.aws_request_id)
    detail = event.detail or {}
    logger.info(
        "ingestion event",
        extra=fields(
            IDEMPOTENCY_KEY=detail.get(EventDetailField.IDEMPOTENCY_KEY.value),
            ERROR_TYPE=detail.get(EventDetailField.ERROR_TYPE.value),
            EVENT_ID=event.get_id,
            EVENT_SOURCE=event.source,
            DETAIL_TYPE=event.detail_type,
            EVENT_TIME=event.time,
            DETAIL=detail,
        ),
    )
    return {"logged": event.get_id}
