"""Reset, authorizer and event-log functions through their handlers (moto for SSM / Secrets Manager)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.authorizer import handler as authorizer
from functions.common.failure_mode import FailureModeReader, Resolution
from functions.common.names import EVENT_SOURCE, FAILURE_MODE_PARAMETER, DetailType, EnvVar, FailureMode
from functions.common.observability import logger
from functions.common.parameter_provider import ParameterWithMetadataProvider
from functions.event_log import handler as event_log
from functions.reset import handler as reset

API_KEY = "s3cr3t-api-key-value"


def test_reset_sets_none_in_json_form(stage: Any, lambda_context: Any) -> None:
    stage.set_failure_mode("poison_payload")
    reset.ssm_client.cache_clear()

    result = reset.lambda_handler({}, lambda_context)

    stored = json.loads(stage.ssm.get_parameter(Name=FAILURE_MODE_PARAMETER)["Parameter"]["Value"])
    assert stored["mode"] == FailureMode.NONE.value
    assert stored["setBy"] == "reset"
    assert abs(stored["setAt"] - time.time()) < 5
    assert result["failureMode"] == "none"
    reader = FailureModeReader(
        ParameterWithMetadataProvider(stage.ssm),
        parameter_name=FAILURE_MODE_PARAMETER,
        enabled=True,
        cache_seconds=0,
    )
    assert reader.current().resolution is Resolution.NONE
    reset.ssm_client.cache_clear()


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        arn = client.create_secret(Name="ingestion/api-key", SecretString=API_KEY)["ARN"]
        monkeypatch.setenv(EnvVar.API_KEY_SECRET_ARN.value, arn)
        authorizer.secrets.cache_clear()
        yield client
        authorizer.secrets.cache_clear()


def authorizer_event(headers: dict[str, str]) -> dict[str, Any]:
    return {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": "arn:aws:execute-api:us-east-1:123456789012:api/$default/POST/events",
        "identitySource": [headers.get("x-api-key", "")],
        "routeKey": "POST /events",
        "rawPath": "/events",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "http": {"method": "POST", "path": "/events", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": "r",
            "routeKey": "POST /events",
            "stage": "$default",
        },
    }


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"x-api-key": API_KEY}, True),
        ({"x-api-key": API_KEY + "x"}, False),
        ({"x-api-key": API_KEY[:-1]}, False),
        ({"x-api-key": ""}, False),
        ({}, False),
        ({"x-api-key": "ünïcødé"}, False),
    ],
)
def test_authorizer_compares_the_key(
    secret: Any, lambda_context: Any, headers: dict[str, str], allowed: bool
) -> None:
    assert authorizer.lambda_handler(authorizer_event(headers), lambda_context) == {"isAuthorized": allowed}


def test_authorizer_fails_closed_when_the_secret_is_unreadable(
    secret: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        EnvVar.API_KEY_SECRET_ARN.value, "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope"
    )
    event = authorizer_event({"x-api-key": API_KEY})
    assert authorizer.lambda_handler(event, lambda_context) == {"isAuthorized": False}


def test_authorizer_caches_the_secret(secret: Any, lambda_context: Any) -> None:
    event = authorizer_event({"x-api-key": API_KEY})
    assert authorizer.lambda_handler(event, lambda_context)["isAuthorized"] is True
    secret.update_secret(SecretId="ingestion/api-key", SecretString="rotated-value-0001")
    # Within the cache window the old key still works; a new container sees the rotated one.
    assert authorizer.lambda_handler(event, lambda_context)["isAuthorized"] is True
    authorizer.secrets.cache_clear()
    assert authorizer.lambda_handler(event, lambda_context)["isAuthorized"] is False


def test_event_log_writes_one_structured_line(lambda_context: Any, capfd: pytest.CaptureFixture[str]) -> None:
    event = {
        "version": "0",
        "id": "evt-1",
        "detail-type": DetailType.FAILURE.value,
        "source": EVENT_SOURCE,
        "account": "123456789012",
        "time": "2026-11-28T08:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "idempotencyKey": "k-1",
            "errorType": "SchemaValidationError",
            "status": "FAILED",
            "attempts": 2,
        },
    }

    stream = io.StringIO()
    log_handler = logger.registered_handler
    previous = log_handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        assert event_log.lambda_handler(event, lambda_context) == {"logged": "evt-1"}
    finally:
        log_handler.setStream(previous)  # type: ignore[attr-defined]

    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert (line["idempotencyKey"], line["errorType"], line["detailType"]) == (
        "k-1",
        "SchemaValidationError",
        DetailType.FAILURE.value,
    )
    assert line["requestId"] == lambda_context.aws_request_id
