"""Engine conformance: an execute-api request reaches the API in the account that owns it, whoever
calls, as on AWS, where the API id in the invoke URL names the API (API Gateway Developer Guide,
"Invoking an HTTP API"). ministack looked the API up in the caller's account only, so an unsigned
producer call (API key, no SigV4) to an API of another local account answered 404: the pipeline
rehearsal's dev smoke test (dev is account 111111111111) failed that way.
lab/localcloud/engine_patches/execute_api_owner.py runs such a request in the API's own account.
"""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from typing import Any

from lab.localcloud.engine import REGION, EngineClients

OTHER_ACCOUNT = "111111111111"
SOURCE = """
def lambda_handler(event, context):
    return {"statusCode": 200, "body": "ran in " + context.invoked_function_arn.split(":")[4]}
"""


def test_an_unsigned_call_reaches_an_http_api_of_another_account(
    local_engine: Any, make_function: Any
) -> None:
    other = EngineClients(local_engine.info, account=OTHER_ACCOUNT)
    lam, apis = other("lambda"), other("apigatewayv2")
    suffix = uuid.uuid4().hex[:8]
    function = lam.get_function(FunctionName=make_function(SOURCE, account=OTHER_ACCOUNT))["Configuration"][
        "FunctionArn"
    ]
    api_id = apis.create_api(Name=f"owner-api-{suffix}", ProtocolType="HTTP")["ApiId"]
    integration = apis.create_integration(
        ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=function, PayloadFormatVersion="2.0"
    )
    apis.create_route(
        ApiId=api_id, RouteKey="GET /hello", Target=f"integrations/{integration['IntegrationId']}"
    )
    apis.create_stage(ApiId=api_id, StageName="$default", AutoDeploy=True)
    lam.add_permission(
        FunctionName=function, StatementId="api", Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
        SourceArn=f"arn:aws:execute-api:{REGION}:{OTHER_ACCOUNT}:{api_id}/*/*/hello",
    )  # fmt: skip

    url = f"{local_engine.info.endpoint_url}/_aws/execute-api/{api_id}/hello"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            status, body = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read().decode()
    assert (status, body) == (200, f"ran in {OTHER_ACCOUNT}")
