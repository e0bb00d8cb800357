"""authMode apiKey: a shared key in Secrets Manager, checked by a Lambda authorizer on x-api-key.

HTTP APIs have no API keys (a REST API feature), hence the authorizer (docs/deviations.md).
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from app.constructs.lambda_fn import FunctionSettings, LambdaFn
from app.constructs.nag import suppress
from functions.common import names


def api_key_secret_name(stage_prefix: str) -> str:
    """Deterministic, so the pipeline's checks can read the key of a stage they did not deploy."""
    return f"{stage_prefix}/api-key"


class ApiKeyAuthorizer(Construct):
    """The secret, the authorizer function allowed to read it, and the HTTP API authorizer."""

    def __init__(self, scope: Construct, construct_id: str, *, functions: FunctionSettings) -> None:
        super().__init__(scope, construct_id)
        self.secret_name = api_key_secret_name(functions.prefix)
        self.secret = secretsmanager.Secret(
            self,
            "Secret",
            secret_name=self.secret_name,
            description="Shared API key checked by the Lambda authorizer (header x-api-key)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                exclude_punctuation=True, password_length=40
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
        suppress(
            self.secret,
            "AwsSolutions-SMG4",
            "a shared lab API key: operators rotate it by updating the secret (the authorizer re-reads it "
            "after its cache), a rotation Lambda would add a function for no security gain here",
        )
        self.function = LambdaFn(
            self,
            "Function",
            settings=functions,
            name="authorizer",
            handler=names.Handler.AUTHORIZER,
            description="HTTP API Lambda authorizer: compares x-api-key with the API key secret",
            timeout_seconds=5,
            environment={names.EnvVar.API_KEY_SECRET_ARN: self.secret.secret_arn},
        )
        self.function.allow(["secretsmanager:GetSecretValue"], [self.secret.secret_arn])
        self.authorizer = authorizers.HttpLambdaAuthorizer(
            "ApiKeyAuthorizer",
            self.function.function,
            response_types=[authorizers.HttpLambdaResponseType.SIMPLE],
            identity_source=[f"$request.header.{names.API_KEY_HEADER}"],
            results_cache_ttl=Duration.minutes(5),
        )
