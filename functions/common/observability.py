"""One Logger, Metrics (EMF) and Tracer per process, shared by every module of a function."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from functions.common.names import METRICS_NAMESPACE, SERVICE_NAME, DeliveryMetricName, LogField, MetricName

# Explicit service and namespace (they win over POWERTOOLS_* variables): every function emits into
# one metric stream per name, dimension service=SERVICE_NAME, which the alarms and dashboard use.
logger = Logger(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)
tracer = Tracer(service=SERVICE_NAME)


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
