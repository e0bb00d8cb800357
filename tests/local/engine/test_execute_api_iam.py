"""Engine conformance: an HTTP API route with AuthorizationType AWS_IAM runs its integration only for
a SigV4-signed request whose principal may execute-api:Invoke the route, else 403 - what the
/redrive/* routes rely on to keep producers out (issue 12, item 8).

API Gateway developer guide, "Control access to HTTP APIs with IAM authorization"
(http-api-access-control-iam.html); the 403 answers: "How do I troubleshoot signature mismatch
errors when making SigV4 signed requests with IAM authentication to API Gateway?"
(repost.aws/knowledge-center/api-gateway-iam-sigv4-mismatch). The engine verifies signatures and
policies itself; lab/localcloud/engine_patches/execute_api_iam.py refuses a non-SigV4
Authorization header, which it let through.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lab.localcloud.engine import ACCOUNT_ID, REGION

ANSWER_SOURCE = """
def lambda_handler(event, context):
    return {"statusCode": 200, "body": "operator route ran"}
"""
FORBIDDEN = (403, {"message": "Forbidden"})
RAN = (200, "operator route ran")


def call(
    url: str, *, credentials: Credentials | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    request = AWSRequest(method="GET", url=url, headers=headers or {})
    if credentials is not None:
        SigV4Auth(credentials, "execute-api", REGION).add_auth(request)
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=dict(request.headers)), timeout=15
        ) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def iam_route(local_engine, make_function, name: Callable[[str], str]) -> dict[str, str]:
    """GET /operate behind AWS_IAM on an HTTP API the test creates; its ARN and URL."""
    lam, apis = local_engine.client("lambda"), local_engine.client("apigatewayv2")
    function = make_function(ANSWER_SOURCE)
    function_arn = lam.get_function(FunctionName=function)["Configuration"]["FunctionArn"]
    api_id = apis.create_api(Name=name("operator-api"), ProtocolType="HTTP")["ApiId"]
    integration = apis.create_integration(
        ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=function_arn, PayloadFormatVersion="2.0"
    )
    apis.create_route(
        ApiId=api_id, RouteKey="GET /operate", AuthorizationType="AWS_IAM",
        Target=f"integrations/{integration['IntegrationId']}",
    )  # fmt: skip
    apis.create_stage(ApiId=api_id, StageName="$default", AutoDeploy=True)
    source = f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{api_id}/*/*/operate"
    lam.add_permission(
        FunctionName=function, StatementId="api", Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com", SourceArn=source,
    )  # fmt: skip
    return {
        "arn": f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{api_id}/*/GET/operate",
        "url": f"{local_engine.endpoint_url}/_aws/execute-api/{api_id}/operate",
    }


def user_credentials(local_engine, name: Callable[[str], str], allowed_arn: str | None) -> Credentials:
    """An IAM user's access key; allowed execute-api:Invoke on allowed_arn (None: on nothing)."""
    iam = local_engine.client("iam")
    user = name("operator")
    iam.create_user(UserName=user)
    if allowed_arn:
        statement = {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": allowed_arn}
        iam.put_user_policy(
            UserName=user, PolicyName="invoke",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
        )  # fmt: skip
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return Credentials(key["AccessKeyId"], key["SecretAccessKey"])


def test_an_iam_route_runs_only_for_an_allowed_sigv4_principal(local_engine, iam_route, name) -> None:
    assert local_engine.info.auth, "route-level IAM authorization needs the engine's IAM enforcement"
    operator = user_credentials(local_engine, name, iam_route["arn"])
    producer = user_credentials(local_engine, name, None)

    assert call(iam_route["url"], credentials=operator) == RAN
    assert call(iam_route["url"]) == FORBIDDEN
    denied = call(iam_route["url"], credentials=producer)
    assert denied[0] == 403
    assert "is not authorized to perform: execute-api:Invoke" in denied[1]["message"]
    wrong_secret = call(iam_route["url"], credentials=Credentials(operator.access_key, "not-the-secret"))
    assert wrong_secret[0] == 403
    assert "signature" in wrong_secret[1]["message"]


@pytest.mark.parametrize(
    "authorization",
    ["Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "x-api-key-as-authorization", "AWS4-HMAC-SHA1 nope"],
)
def test_an_iam_route_refuses_an_authorization_that_is_not_sigv4(
    local_engine, iam_route, authorization
) -> None:
    """A producer's bearer token or API key in Authorization is no SigV4 signature: 403, never the
    integration (the engine ran the integration for the first two before the lab's patch; a
    malformed SigV4 header it refuses itself, as IncompleteSignatureException)."""
    status, body = call(iam_route["url"], headers={"Authorization": authorization})
    assert status == 403
    assert body != RAN[1]
