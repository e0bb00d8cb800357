"""One Logger and Metrics (EMF) per process, shared by every module of a function, and X-Ray
tracing of the handler where tracing can record."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice

from functions.common.names import (
    METRICS_NAMESPACE,
    SERVICE_NAME,
    DeliveryMetricName,
    EnvVar,
    LogField,
    MetricName,
)

# Explicit service and namespace (they win over POWERTOOLS_* variables): every function emits into
# one metric stream per name, dimension service=SERVICE_NAME, which the alarms and dashboard use.
# RFC 3339 timestamps: Lambda's log-level filtering reads a JSON line's "level" only when its
# "timestamp" is valid RFC 3339, and otherwise gives the line the level INFO (AWS Lambda Developer
# Guide, "Log-level filtering"); Powertools' default timestamp ("2026-11-29 06:55:21,414+0000") is not.
logger = Logger(service=SERVICE_NAME, use_rfc3339=True)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)


class AtLeastLevel(logging.Filter):
    """Drops log records below a level, whatever level the logger itself was given."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level


def configured_level() -> int:
    """POWERTOOLS_LOG_LEVEL as a logging level (INFO, Powertools' default, when unset or unknown)."""
    name = os.environ.get(EnvVar.POWERTOOLS_LOG_LEVEL.value, "INFO").upper()
    level = logging.getLevelName(name)
    return level if isinstance(level, int) else logging.INFO


def keep_configured_level(target: Logger) -> None:
    """Make POWERTOOLS_LOG_LEVEL the least level `target` writes, with Lambda's advanced logging
    controls on.

    Lambda sets AWS_LAMBDA_LOG_LEVEL to the function's ApplicationLogLevel, and Powertools gives that
    variable precedence over POWERTOOLS_LOG_LEVEL (Powertools for AWS Lambda (Python), Logger, "AWS
    Lambda Advanced Logging Controls (ALC)": the order of priority; aws-powertools/powertools-lambda-
    python#7220). The stage keeps ApplicationLogLevel at INFO so that the EMF metric lines (no
    "level" key: INFO for Lambda) pass, so without this filter a stage at logLevel WARNING would still
    write every INFO line. By hand: Powertools offers no setting that wins over ALC.
    """
    target.addFilter(AtLeastLevel(configured_level()))


def quiet_other_loggers() -> None:
    """Every logger but ours at WARNING or above (POWERTOOLS_LOG_LEVEL if higher).

    With Lambda's advanced logging controls the Python runtime sets the root logger to the function's
    ApplicationLogLevel (AWS_LAMBDA_LOG_LEVEL; AWS Lambda Developer Guide, "Using Lambda advanced
    logging controls with Python"), so at DEBUG botocore would log each signed request, session token
    included, and at INFO its credential lookups. Ours does not propagate to the root (Powertools
    Logger), so this touches only the libraries'.
    """
    level = max(logging.WARNING, configured_level())
    logging.getLogger().setLevel(level)
    for name in ("boto3", "botocore", "urllib3", "s3transfer"):
        logging.getLogger(name).setLevel(level)


keep_configured_level(logger)
quiet_other_loggers()

Handler = TypeVar("Handler", bound=Callable[..., Any])


def tracing_enabled() -> bool:
    """Inside Lambda and not switched off by POWERTOOLS_TRACE_DISABLED: the rule Powertools' Tracer
    applies to itself (it disables itself outside Lambda and when that variable is true: Powertools
    for AWS Lambda (Python), Tracer), checked here before the X-Ray SDK is imported."""
    in_lambda = bool(os.environ.get("LAMBDA_TASK_ROOT"))
    disabled = resolve_truthy_env_var_choice(
        env=os.environ.get(EnvVar.POWERTOOLS_TRACE_DISABLED.value, "false")
    )
    return in_lambda and not disabled


def traced(handler: Handler) -> Handler:
    """The handler under Powertools' Tracer where tracing is on; unchanged elsewhere.

    Creating a Tracer imports the X-Ray SDK even when tracing is disabled, which costs more than
    `import boto3` at cold start: where no daemon listens (the local cloud sets
    POWERTOOLS_TRACE_DISABLED) or outside Lambda (tests), the SDK is never loaded.
    """
    if not tracing_enabled():
        return handler
    from aws_lambda_powertools import Tracer  # noqa: PLC0415 - imported only where tracing is on

    return cast(Handler, Tracer(service=SERVICE_NAME).capture_lambda_handler(handler))


def bind_request_id(request_id: str) -> None:
    """The requestId field of every later log line (metric filters and queries join on it)."""
    logger.append_keys(**{LogField.REQUEST_ID.value: request_id})


def count(name: MetricName | DeliveryMetricName, value: float = 1) -> None:
    metrics.add_metric(name=name.value, unit=MetricUnit.Count, value=value)


def milliseconds(name: MetricName, value: float) -> None:
    metrics.add_metric(name=name.value, unit=MetricUnit.Milliseconds, value=value)


def fields(**values: Any) -> dict[str, Any]:
    """Map LogField member names to their wire names: fields(IDEMPOTENCY_KEY=k) -> {"idempotencyKey": k}."""
    return {LogField[name].value: value for name, value in values.items()}
