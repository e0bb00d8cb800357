"""HTTP API Lambda REQUEST authorizer (authMode apiKey, simple responses): x-api-key vs a secret.

The key is compared in constant time with the Secrets Manager secret named by API_KEY_SECRET_ARN
(cached by Powertools Parameters). Any failure to read the secret denies: the authorizer fails closed.
"""

from __future__ import annotations

import hmac
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerEventV2,
    APIGatewayAuthorizerResponseV2,
)
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.clients import client
from functions.common.config import env_str
from functions.common.names import API_KEY_HEADER, EnvVar
from functions.common.observability import bind_request_id, fields, logger, tracer

# Rotation takes effect within this many seconds without a cold start.
SECRET_CACHE_SECONDS = 300


@cache
def secrets() -> SecretsProvider:
    return SecretsProvider(boto3_client=client("secretsmanager"))


def is_authorized(presented: str | None, provider: SecretsProvider, secret_id: str) -> bool:
    if not presented:
        return False
    try:
        expected = provider.get(secret_id, max_age=SECRET_CACHE_SECONDS)
    except GetParameterError:
        logger.exception("api key secret unreadable; denying")
        return False
    if not isinstance(expected, str) or not expected:
        logger.error("api key secret is empty or binary; denying")
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@event_source(data_class=APIGatewayAuthorizerEventV2)
def lambda_handler(event: APIGatewayAuthorizerEventV2, context: LambdaContext) -> dict[str, Any]:
    bind_request_id(context.aws_request_id)
    presented = event.headers.get(API_KEY_HEADER)
    allowed = is_authorized(presented, secrets(), env_str(EnvVar.API_KEY_SECRET_ARN))
    logger.info("authorization decided", extra=fields(AUTHORIZED=allowed, ROUTE_ARN=event.route_arn))
    return APIGatewayAuthorizerResponseV2(authorize=allowed).asdict()
