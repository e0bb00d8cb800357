"""Engine conformance: an HTTP API JWT authorizer lets a request through only with a token its
issuer signed, for one of its audiences, as on AWS (API Gateway Developer Guide, "Controlling access
to HTTP APIs with JWT authorizers": API Gateway checks the token's signature against the issuer's
JWKS, then `iss`, `aud` or `client_id`, `exp`, `nbf` and `iat`; a failed check answers 401).

The rehearsal's prod stage (authMode jwt) is called this way by its smoke test, with an ID token of
a Cognito user pool of the engine (lab/rehearsal/issuer.py). Without `cryptography` in the engine's
environment ministack signs nothing and rejects every token, so prod's smoke test got 401: this test
fails then (the first assertion).
"""

from __future__ import annotations

import base64
import json
import secrets
import urllib.error
import urllib.request
import uuid
from typing import Any

from lab.localcloud.engine import REGION, EngineClients

API_ACCOUNT = "222222222222"
USER = "jwt-conformance"
SOURCE = """
def lambda_handler(event, context):
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    return {"statusCode": 200, "body": "hello " + claims["cognito:username"]}
"""


def _call(url: str, token: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _with_claims(token: str, **changes: Any) -> str:
    """The token with its claims changed and its signature kept (so no longer valid for them)."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps(claims | changes).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _issuer(local_engine: Any) -> tuple[str, str, str]:
    """A user pool of the engine's own account: (issuer URL, app client id, an ID token)."""
    cognito = local_engine.client("cognito-idp")
    pool = cognito.create_user_pool(PoolName=f"jwt-{uuid.uuid4().hex[:8]}")["UserPool"]["Id"]
    client = cognito.create_user_pool_client(
        UserPoolId=pool, ClientName="smoke", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]
    password = "Jwt-" + secrets.token_urlsafe(12) + "-9a"
    cognito.admin_create_user(UserPoolId=pool, Username=USER, MessageAction="SUPPRESS")
    cognito.admin_set_user_password(UserPoolId=pool, Username=USER, Password=password, Permanent=True)
    token = cognito.initiate_auth(
        ClientId=client,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": USER, "PASSWORD": password},
    )["AuthenticationResult"]["IdToken"]
    return f"https://cognito-idp.{REGION}.amazonaws.com/{pool}", client, token


def test_a_jwt_route_takes_its_issuers_token_only(local_engine: Any, make_function: Any) -> None:
    issuer, audience, token = _issuer(local_engine)
    clients = EngineClients(local_engine.info, account=API_ACCOUNT)
    lam, apis = clients("lambda"), clients("apigatewayv2")
    function = lam.get_function(FunctionName=make_function(SOURCE, account=API_ACCOUNT))["Configuration"][
        "FunctionArn"
    ]
    api_id = apis.create_api(Name=f"jwt-api-{uuid.uuid4().hex[:8]}", ProtocolType="HTTP")["ApiId"]
    authorizer = apis.create_authorizer(
        ApiId=api_id,
        Name="jwt",
        AuthorizerType="JWT",
        IdentitySource=["$request.header.Authorization"],
        JwtConfiguration={"Issuer": issuer, "Audience": [audience]},
    )["AuthorizerId"]
    integration = apis.create_integration(
        ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=function, PayloadFormatVersion="2.0"
    )["IntegrationId"]
    apis.create_route(
        ApiId=api_id,
        RouteKey="GET /hello",
        Target=f"integrations/{integration}",
        AuthorizationType="JWT",
        AuthorizerId=authorizer,
    )
    apis.create_stage(ApiId=api_id, StageName="$default", AutoDeploy=True)
    lam.add_permission(
        FunctionName=function, StatementId="api", Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
        SourceArn=f"arn:aws:execute-api:{REGION}:{API_ACCOUNT}:{api_id}/*/*/hello",
    )  # fmt: skip
    url = f"{local_engine.info.endpoint_url}/_aws/execute-api/{api_id}/hello"

    assert _call(url, token) == (200, f"hello {USER}"), "the issuer's own token was refused"
    assert _call(url, _with_claims(token, aud="another-client"))[0] == 401, "a token for another audience"
    assert _call(url, _with_claims(token, **{"cognito:username": "someone-else"}))[0] == 401, "a forged claim"
    assert _call(url, "not-a-token")[0] == 401
