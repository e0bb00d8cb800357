"""Producers cannot operate the DLQ, on the deployed IngestionLocal stage: the redrive routes take IAM
authorization (SigV4) in every authMode, so a request without a signature, or signed by a principal
that may not execute-api:Invoke the route, gets API Gateway's 403 (API Gateway Developer Guide,
"Control access to HTTP APIs with IAM authorization"), while the operator's signature opens them.

The refusals need the local cloud to enforce route-level IAM authorization, which the engine does
not do by itself (issue 12, item 8: the lab's engine patches enforce it, lab/localcloud); until
they do, those tests are expected to fail, strictly, so the enforcement landing turns them green.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from functions.common.names import ApiRoute
from lab.localcloud.engine import ACCOUNT_ID
from stage_client.api import call_api
from stage_client.target import Target
from tests.local.conftest import LocalEngine

OPERATOR_ROUTES = [route for route in ApiRoute if route.for_operators]
NEEDS_ROUTE_IAM = pytest.mark.xfail(
    strict=True,
    reason="the local cloud does not enforce route-level IAM authorization yet (issue 12 item 8)",
)


def unsigned(target: Target, route: ApiRoute) -> tuple[int, Any]:
    """The route as a producer calls it: its API key / bearer token, no SigV4 signature."""
    body = b"{}" if route.method == "POST" else None
    request = urllib.request.Request(
        f"{target.api_url}{route.path}",
        data=body,
        method=route.method,
        headers={"content-type": "application/json", **target.api_headers()},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@NEEDS_ROUTE_IAM
@pytest.mark.parametrize("route", OPERATOR_ROUTES, ids=[r.value for r in OPERATOR_ROUTES])
def test_a_request_without_a_signature_is_forbidden(local_target: Target, route: ApiRoute) -> None:
    assert unsigned(local_target, route) == (403, {"message": "Forbidden"})


@NEEDS_ROUTE_IAM
def test_a_principal_not_allowed_to_invoke_the_route_is_forbidden(
    local_engine: LocalEngine, local_target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed, but by a role whose policy does not allow execute-api:Invoke on the route."""
    iam, sts = local_engine.client("iam"), local_engine.client("sts")
    name = f"producer-{uuid.uuid4().hex[:8]}"
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role_arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName=name)["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", credentials["SessionToken"])
    producer = dataclasses.replace(local_target)  # a fresh credentials session: the role's
    response = call_api(producer, "GET", ApiRoute.REDRIVE_PREVIEW.path, retries=0)
    assert (response.status, response.body) == (403, {"message": "Forbidden"})


def test_the_operators_signature_opens_the_routes(local_target: Target) -> None:
    """The engine's test credentials are the account root, allowed everything: signed calls pass."""
    preview = call_api(local_target, "GET", ApiRoute.REDRIVE_PREVIEW.path, query={"maxMessages": 1})
    assert preview.status == 200, preview.body
    status = call_api(local_target, "GET", ApiRoute.REDRIVE_STATUS.path, query={"jobId": "no-such-job"})
    assert status.status == 404, status.body
