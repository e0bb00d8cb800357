"""Reset function: sets /ingestion/failure_mode back to none (JSON form, setBy "reset")."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.clients import client
from functions.common.config import failure_mode_parameter_name
from functions.common.failure_mode import write_failure_mode
from functions.common.names import FailureMode
from functions.common.observability import bind_request_id, fields, logger, tracer

SET_BY = "reset"


@cache
def ssm_client() -> Any:
    return client("ssm")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    bind_request_id(context.aws_request_id)
    parameter = failure_mode_parameter_name()
    value = write_failure_mode(ssm_client(), parameter, FailureMode.NONE, set_by=SET_BY)
    logger.info("failure mode reset", extra=fields(PARAMETER=parameter, PARAMETER_VALUE=value))
    return {"parameter": parameter, "failureMode": FailureMode.NONE.value, "value": value}
