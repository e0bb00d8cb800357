"""Redrive API (preview, start, cancel, status) and the asynchronous job run, in one function."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.clients import client
from functions.common.config import env_float, env_int, env_str
from functions.common.names import REDRIVE_JOB_EVENT_KEY, EnvVar
from functions.common.observability import bind_request_id, fields, logger, metrics, tracer
from functions.common.state_table import StateTable
from functions.redrive.job_store import JobNotFound, JobStore
from functions.redrive.jobs import JobConflict, JobStartFailed, RedriveJobs
from functions.redrive.mover import DlqMover, Pacer
from functions.redrive.params import InvalidParameters, parse_params

DEFAULT_MAX_REDRIVES_PER_MESSAGE = 3
DEFAULT_MAX_MESSAGES_PER_SECOND = 50.0
DEFAULT_TTL_DAYS = 7

app = APIGatewayHttpResolver()


@dataclass(frozen=True)
class Dependencies:
    mover: DlqMover
    store: JobStore
    lambda_client: Any
    rate_per_second: float


@cache
def dependencies() -> Dependencies:
    """Built on the first invocation, once per container: importing needs no AWS and no env vars."""
    ttl_days = env_int(EnvVar.TTL_DAYS, DEFAULT_TTL_DAYS, minimum=1)
    dynamodb = client("dynamodb")
    mover = DlqMover(
        sqs=client("sqs"),
        state=StateTable(dynamodb, env_str(EnvVar.TABLE_NAME), ttl_days=ttl_days),
        dlq_url=env_str(EnvVar.DLQ_URL),
        queue_url=env_str(EnvVar.QUEUE_URL),
        quarantine_url=env_str(EnvVar.QUARANTINE_QUEUE_URL),
        max_redrives_per_message=env_int(
            EnvVar.MAX_REDRIVES_PER_MESSAGE, DEFAULT_MAX_REDRIVES_PER_MESSAGE, minimum=1
        ),
    )
    return Dependencies(
        mover=mover,
        store=JobStore(dynamodb, env_str(EnvVar.REDRIVE_JOBS_TABLE_NAME), ttl_days=ttl_days),
        lambda_client=client("lambda"),
        rate_per_second=env_float(
            EnvVar.REDRIVE_MAX_MESSAGES_PER_SECOND, DEFAULT_MAX_MESSAGES_PER_SECOND, minimum=0.01
        ),
    )


def jobs_for(context: LambdaContext) -> RedriveJobs:
    deps = dependencies()

    def start_async(job_id: str) -> None:
        deps.lambda_client.invoke(
            # The ARN keeps an alias or version qualifier; the name (set by every runtime) is the fallback.
            FunctionName=context.invoked_function_arn or os.environ["AWS_LAMBDA_FUNCTION_NAME"],
            InvocationType="Event",
            Payload=json.dumps({REDRIVE_JOB_EVENT_KEY: job_id}).encode(),
        )

    return RedriveJobs(
        store=deps.store,
        mover=deps.mover,
        start_async=start_async,
        pacer_factory=lambda: Pacer(deps.rate_per_second),
    )


def _json(status: int, body: Any) -> Response[str]:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body, default=str)
    )


def _json_body() -> dict[str, Any]:
    event = app.current_event
    if not event.body:
        return {}
    try:
        body = json.loads(event.decoded_body or "")
    except (ValueError, UnicodeDecodeError):
        raise InvalidParameters("body must be a JSON object") from None
    if not isinstance(body, dict):
        raise InvalidParameters("body must be a JSON object")
    return body


def _job_id(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidParameters("jobId is required")
    return value.strip()


@app.get("/redrive/preview")
def preview() -> Response[str]:
    params = parse_params(app.current_event.query_string_parameters, for_start=False, from_query=True)
    return _json(200, dependencies().mover.preview(params))


@app.post("/redrive/start")
def start() -> Response[str]:
    params = parse_params(_json_body(), for_start=True, from_query=False)
    job = jobs_for(app.lambda_context).start(params)
    return _json(202, {"jobId": job.job_id, "status": job.status.value, "params": job.params.to_item()})


@app.post("/redrive/cancel")
def cancel() -> Response[str]:
    body = _json_body()
    job = jobs_for(app.lambda_context).cancel(_job_id(body.get("jobId")))
    return _json(202, {"jobId": job.job_id, "status": job.status.value})


@app.get("/redrive/status")
def status() -> Response[str]:
    job_id = _job_id(app.current_event.query_string_parameters.get("jobId"))
    return _json(200, jobs_for(app.lambda_context).status(job_id).to_response())


@app.exception_handler(InvalidParameters)
def invalid(error: InvalidParameters) -> Response[str]:
    return _json(400, {"error": "invalid_parameters", "message": str(error)})


@app.exception_handler(JobNotFound)
def not_found(error: JobNotFound) -> Response[str]:
    return _json(404, {"error": "job_not_found", "message": f"no redrive job {error}"})


@app.exception_handler(JobConflict)
def conflict(error: JobConflict) -> Response[str]:
    return _json(409, {"error": "job_finished", "message": str(error), "status": error.job.status.value})


@app.exception_handler(JobStartFailed)
def start_failed(error: JobStartFailed) -> Response[str]:
    logger.error("redrive job could not be started", extra=fields(REASON=str(error)))
    return _json(503, {"error": "unavailable", "message": "the job could not be started; retry"})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    bind_request_id(context.aws_request_id)
    job_id = event.get(REDRIVE_JOB_EVENT_KEY)
    if job_id is not None:
        logger.append_keys(**fields(REDRIVE_JOB_ID=job_id))
        job = jobs_for(context).run(str(job_id), context.get_remaining_time_in_millis)
        return {"jobId": job.job_id, "status": job.status.value, "counters": job.counters.as_dict()}
    return app.resolve(event, context)
