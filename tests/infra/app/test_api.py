"""HTTP API: routes, authentication per authMode (producers) and IAM for the operator routes, CORS,
throttling and access logs."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match

from app.stacks.api_stack import TARGETS
from functions.common import names
from tests.infra.synth import SynthesizedStage

OPERATOR_ROUTES = {route.value for route in names.ApiRoute if route.for_operators}


def _routes(stage: SynthesizedStage) -> dict[str, dict[str, Any]]:
    return {
        route["Properties"]["RouteKey"]: route["Properties"]
        for route in stage.resources("api", "AWS::ApiGatewayV2::Route").values()
    }


def _route_keys(stage: SynthesizedStage) -> set[str]:
    return {
        route["Properties"]["RouteKey"]
        for route in stage.resources("api", "AWS::ApiGatewayV2::Route").values()
    }


def test_every_route_of_the_contract_exists(any_stage: SynthesizedStage) -> None:
    expected = {route.value for route in TARGETS}
    assert (
        expected
        == {route.value for route in names.ApiRoute}
        == {
            "POST /events",
            "GET /redrive/preview",
            "POST /redrive/start",
            "POST /redrive/cancel",
            "GET /redrive/status",
        }
    )
    assert _route_keys(any_stage) == expected


def test_routes_integrate_the_right_function_with_payload_v2(dev: SynthesizedStage) -> None:
    integrations = dev.resources("api", "AWS::ApiGatewayV2::Integration")
    by_id = {logical_id: dev.ref(i["Properties"]["IntegrationUri"]) for logical_id, i in integrations.items()}
    for integration in integrations.values():
        assert integration["Properties"]["PayloadFormatVersion"] == "2.0"
    compute = dev.stage.compute
    for route in dev.resources("api", "AWS::ApiGatewayV2::Route").values():
        target = route["Properties"]["Target"]["Fn::Join"][1][1]["Ref"]
        function = compute.ingest if route["Properties"]["RouteKey"] == "POST /events" else compute.redrive
        assert by_id[target] == dev.arn(function.function)


def test_operator_routes_take_iam_authorization_in_every_auth_mode(any_stage: SynthesizedStage) -> None:
    """Producers must not operate the DLQ: the redrive routes read dead-lettered payloads and move
    messages, so they take IAM authorization (SigV4, execute-api:Invoke on the route) whatever the
    authMode; a producer's API key or JWT opens only POST /events (API Gateway Developer Guide,
    "Control access to HTTP APIs with IAM authorization")."""
    assert {
        "GET /redrive/preview",
        "POST /redrive/start",
        "POST /redrive/cancel",
        "GET /redrive/status",
    } == OPERATOR_ROUTES
    for key, route in _routes(any_stage).items():
        if key in OPERATOR_ROUTES:
            assert route["AuthorizationType"] == "AWS_IAM", key
            assert "AuthorizerId" not in route, key
        else:
            assert route.get("AuthorizationType", "NONE") != "AWS_IAM", key


@pytest.mark.parametrize(
    ("env_name", "producer_authorization"), [("local", "NONE"), ("dev", "CUSTOM"), ("prod", "JWT")]
)
def test_producers_post_events_with_the_auth_modes_credential(
    env_name: str,
    producer_authorization: str,
    local: SynthesizedStage,
    dev: SynthesizedStage,
    prod: SynthesizedStage,
) -> None:
    stage = {"local": local, "dev": dev, "prod": prod}[env_name]
    authorizers = [
        {"Ref": logical_id} for logical_id in stage.resources("api", "AWS::ApiGatewayV2::Authorizer")
    ]
    events = _routes(stage)[names.ApiRoute.EVENTS.value]
    assert events.get("AuthorizationType", "NONE") == producer_authorization
    assert ([events["AuthorizerId"]] if "AuthorizerId" in events else []) == authorizers


def test_api_key_mode_uses_the_lambda_authorizer_for_producers(dev: SynthesizedStage) -> None:
    assert dev.config.auth_mode == "apiKey"
    authorizers = dev.resources("api", "AWS::ApiGatewayV2::Authorizer")
    assert len(authorizers) == 1
    ((authorizer_id, authorizer),) = authorizers.items()
    props = authorizer["Properties"]
    assert props["AuthorizerType"] == "REQUEST"
    assert props["EnableSimpleResponses"] is True
    assert props["IdentitySource"] == ["$request.header.x-api-key"]
    assert props["AuthorizerPayloadFormatVersion"] == "2.0"
    events = _routes(dev)[names.ApiRoute.EVENTS.value]
    assert (events["AuthorizationType"], events["AuthorizerId"]) == ("CUSTOM", {"Ref": authorizer_id})
    dev.templates["api"].has_resource_properties(
        "AWS::SecretsManager::Secret",
        {"GenerateSecretString": Match.object_like({"ExcludePunctuation": True})},
    )
    role = dev.stage.api.api_key.function.role  # type: ignore[union-attr]
    secret = dev.logical_id(dev.stage.api.api_key_secret)  # type: ignore[arg-type]
    assert (frozenset({"secretsmanager:GetSecretValue"}), frozenset({secret})) in dev.role_grants(role)


def test_jwt_mode_uses_issuer_and_audience(prod: SynthesizedStage) -> None:
    prod.templates["api"].has_resource_properties(
        "AWS::ApiGatewayV2::Authorizer",
        {
            "AuthorizerType": "JWT",
            "IdentitySource": ["$request.header.Authorization"],
            "JwtConfiguration": {
                "Issuer": prod.config.jwt_issuer,
                "Audience": list(prod.config.jwt_audience),
            },
        },
    )
    assert _routes(prod)[names.ApiRoute.EVENTS.value]["AuthorizationType"] == "JWT"
    assert not prod.resources("api", "AWS::Lambda::Function")
    assert not prod.resources("api", "AWS::SecretsManager::Secret")


def test_none_mode_has_no_authorizer(local: SynthesizedStage) -> None:
    assert not local.resources("api", "AWS::ApiGatewayV2::Authorizer")
    assert _routes(local)[names.ApiRoute.EVENTS.value].get("AuthorizationType", "NONE") == "NONE"


def test_cors_is_limited_to_the_configured_origins(local: SynthesizedStage) -> None:
    assert local.config.cors_allowed_origins
    local.templates["api"].has_resource_properties(
        "AWS::ApiGatewayV2::Api",
        {
            "CorsConfiguration": Match.object_like(
                {
                    "AllowOrigins": list(local.config.cors_allowed_origins),
                    "AllowMethods": ["GET", "POST", "OPTIONS"],
                    # Browsers may send the API key and a client idempotency key, nothing else custom.
                    "AllowHeaders": [
                        "content-type",
                        "authorization",
                        names.API_KEY_HEADER,
                        names.IDEMPOTENCY_KEY_HEADER,
                    ],
                }
            )
        },
    )
    for api in local.resources("api", "AWS::ApiGatewayV2::Api").values():
        assert "*" not in api["Properties"]["CorsConfiguration"]["AllowOrigins"]


def test_without_configured_origins_the_api_has_no_cors_configuration(
    dev: SynthesizedStage, prod: SynthesizedStage
) -> None:
    """No CORS configuration: API Gateway adds no CORS headers and answers no preflight, so browsers
    refuse cross-origin calls (API Gateway Developer Guide, "Configuring CORS for HTTP APIs")."""
    for stage in (dev, prod):
        assert stage.config.cors_allowed_origins == ()
        for api in stage.resources("api", "AWS::ApiGatewayV2::Api").values():
            assert "CorsConfiguration" not in api["Properties"]


def test_default_stage_is_throttled_and_access_logged(any_stage: SynthesizedStage) -> None:
    (stage,) = any_stage.resources("api", "AWS::ApiGatewayV2::Stage").values()
    props = stage["Properties"]
    assert props["StageName"] == "$default"
    assert props["AutoDeploy"] is True
    assert props["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": any_stage.config.api_throttling_burst_limit,
        "ThrottlingRateLimit": any_stage.config.api_throttling_rate_limit,
    }
    assert any_stage.ref(props["AccessLogSettings"]["DestinationArn"]) == any_stage.arn(
        any_stage.stage.api.access_log_group
    )
    assert "$context.requestId" in props["AccessLogSettings"]["Format"]
