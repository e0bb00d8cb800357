"""authMode apiKey on a bare Stack: the secret, the authorizer function and the route authorizer."""

from __future__ import annotations

from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_

from app.components.api_key import ApiKeyAuthorizer, api_key_secret_name
from functions.common import names
from tests.infra.bare_stack import FUNCTIONS, BareStack


def test_the_authorizer_reads_only_its_secret_and_checks_the_header(bare: BareStack) -> None:
    api_key = ApiKeyAuthorizer(bare.stack, "ApiKey", functions=FUNCTIONS)
    # Bound to a route, it becomes the API's REQUEST authorizer on x-api-key.
    target = lambda_.Function(
        bare.stack,
        "T",
        runtime=lambda_.Runtime.PYTHON_3_13,
        handler="x.y",
        code=lambda_.Code.from_inline("x"),
    )
    api = apigw.HttpApi(bare.stack, "Api", default_authorizer=api_key.authorizer)
    api.add_routes(path="/p", integration=integrations.HttpLambdaIntegration("I", target))
    assert api_key.secret_name == api_key_secret_name("ingestion-test") == "ingestion-test/api-key"
    assert bare.props(api_key.secret)["Name"] == "ingestion-test/api-key"
    assert bare.grants(api_key.function) == {
        (frozenset({"secretsmanager:GetSecretValue"}), frozenset({bare.logical_id(api_key.secret)}))
    }
    (authorizer,) = bare.resources("AWS::ApiGatewayV2::Authorizer").values()
    props = authorizer["Properties"]
    assert (props["AuthorizerType"], props["EnableSimpleResponses"]) == ("REQUEST", True)
    assert props["IdentitySource"] == [f"$request.header.{names.API_KEY_HEADER}"]
    assert bare.ref(props["AuthorizerUri"]).endswith(f"{bare.arn(api_key.function.function)}/invocations")
