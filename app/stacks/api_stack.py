"""The HTTP API: POST /events and the redrive routes, throttled and logged.

Two kinds of callers, two authorizations: producers POST /events with the authMode's credential
(the API-key authorizer, a JWT, or nothing locally), and operators call the redrive routes, which
read dead-lettered payloads and move messages, with IAM authorization (SigV4) in every authMode,
so a producer's credential never opens them (API Gateway Developer Guide, "Control access to HTTP
APIs with IAM authorization": the route invokes only for callers allowed execute-api:Invoke).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jsii
from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw_v1
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from app.components.api_key import ApiKeyAuthorizer
from app.config import StageConfig
from app.constructs.lambda_fn import FunctionSettings, retention
from app.constructs.nag import suppress
from app.stacks.functions_stack import FunctionsStack
from functions.common import names

# Which function serves each route (the operator routes are all the redrive function's).
TARGETS: dict[names.ApiRoute, str] = {
    names.ApiRoute.EVENTS: "ingest",
    names.ApiRoute.REDRIVE_PREVIEW: "redrive",
    names.ApiRoute.REDRIVE_START: "redrive",
    names.ApiRoute.REDRIVE_CANCEL: "redrive",
    names.ApiRoute.REDRIVE_STATUS: "redrive",
}


@jsii.implements(apigw.IAccessLogSettings)
class _AccessLogSettings:
    # The construct library only declares this interface; access logging needs an implementation.
    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigw.LogGroupLogDestination(log_group)

    @property
    def destination(self) -> apigw.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw_v1.AccessLogFormat:
        return apigw_v1.AccessLogFormat.custom(
            '{"requestId":"$context.requestId","ip":"$context.identity.sourceIp",'
            '"requestTime":"$context.requestTime","httpMethod":"$context.httpMethod",'
            '"routeKey":"$context.routeKey","status":"$context.status","protocol":"$context.protocol",'
            '"responseLength":"$context.responseLength","integrationLatency":"$context.integrationLatency",'
            '"integrationError":"$context.integrationErrorMessage","authorizerError":"$context.authorizer.error"}'
        )


class ApiStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        functions: FunctionSettings,
        compute: FunctionsStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.api_key: ApiKeyAuthorizer | None = None
        # The producers' authorizer (POST /events); operators always sign with SigV4.
        authorizer: apigw.IHttpRouteAuthorizer | None = None
        if config.auth_mode == "jwt":
            assert config.jwt_issuer is not None  # validated in config
            authorizer = authorizers.HttpJwtAuthorizer(
                "JwtAuthorizer", config.jwt_issuer, jwt_audience=list(config.jwt_audience)
            )
        elif config.auth_mode == "apiKey":
            self.api_key = ApiKeyAuthorizer(self, "ApiKey", functions=functions)
            authorizer = self.api_key.authorizer

        self.api = apigw.HttpApi(
            self,
            "HttpApi",
            api_name=f"{config.prefix}-api",
            description=f"Ingestion lab API ({config.env_name})",
            create_default_stage=False,
            cors_preflight=_cors(config.cors_allowed_origins),
        )
        self.access_log_group = logs.LogGroup(
            self,
            "AccessLogs",
            log_group_name=f"/aws/apigateway/{config.prefix}-api",
            retention=retention(config.log_retention_days),
            removal_policy=RemovalPolicy.RETAIN if config.deletion_protection else RemovalPolicy.DESTROY,
        )
        self.stage = apigw.HttpStage(
            self,
            "DefaultStage",
            http_api=self.api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(
                rate_limit=config.api_throttling_rate_limit, burst_limit=config.api_throttling_burst_limit
            ),
            access_log_settings=_AccessLogSettings(self.access_log_group),
        )
        targets = {"ingest": compute.ingest.function, "redrive": compute.redrive.function}
        route_integrations = {
            key: integrations.HttpLambdaIntegration(
                f"{key.capitalize()}Integration",
                fn,
                payload_format_version=apigw.PayloadFormatVersion.VERSION_2_0,
            )
            for key, fn in targets.items()
        }
        operators = authorizers.HttpIamAuthorizer()
        for route_key, target in TARGETS.items():
            (route,) = self.api.add_routes(
                path=route_key.path,
                methods=[apigw.HttpMethod(route_key.method)],
                integration=route_integrations[target],
                authorizer=operators if route_key.for_operators else authorizer,
            )
            if authorizer is None and not route_key.for_operators:
                suppress(
                    route,
                    "AwsSolutions-APIG4",
                    f"authMode none in {config.env_name}: the lab runs on loopback with no producer but "
                    "the learner (prod refuses authMode none at synth); the operator routes still take IAM",
                )

        self.outputs: dict[names.Output, CfnOutput] = {
            output: CfnOutput(self, output.value, value=value)
            for output, value in (
                (names.Output.API_URL, self.api.api_endpoint),
                (names.Output.API_ID, self.api.api_id),
                (names.Output.AUTH_MODE, config.auth_mode),
            )
        }

    @property
    def api_key_secret(self) -> secretsmanager.ISecret | None:
        return self.api_key.secret if self.api_key else None


def _cors(origins: Sequence[str]) -> apigw.CorsPreflightOptions | None:
    """No origins, no CORS configuration: API Gateway then adds no CORS headers and answers no
    preflight, so browsers refuse every cross-origin call (API Gateway Developer Guide, "Configuring
    CORS for HTTP APIs")."""
    if not origins:
        return None
    return apigw.CorsPreflightOptions(
        allow_origins=list(origins),
        allow_methods=[apigw.CorsHttpMethod.GET, apigw.CorsHttpMethod.POST, apigw.CorsHttpMethod.OPTIONS],
        allow_headers=["content-type", "authorization", names.API_KEY_HEADER, names.IDEMPOTENCY_KEY_HEADER],
        max_age=Duration.hours(1),
    )
