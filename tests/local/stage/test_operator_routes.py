"""Producers cannot operate the DLQ, on the deployed IngestionLocal stage: the redrive routes take IAM
authorization (SigV4) in every authMode, so a request without a signature, or signed by a principal
that may not execute-api:Invoke the route, gets a 403 (API Gateway Developer Guide, "Control access
to HTTP APIs with IAM authorization"), while the operator's signature opens them.

The engine enforces route-level IAM authorization itself (IAM on, as the local tier runs it): an
unsigned request gets 403 {"message": "Forbidden"}, a signature by a principal without
execute-api:Invoke gets 403 with the engine's AccessDenied body (only the status is asserted there).
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


@pytest.mark.parametrize("route", OPERATOR_ROUTES, ids=[r.value for r in OPERATOR_ROUTES])
def test_a_request_without_a_signature_is_forbidden(local_target: Target, route: ApiRoute) -> None:
    assert unsigned(local_target, route) == (403, {"message": "Forbidden"})


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
    producer = dataclasses.replace(local_target)  # its own credentials session: the role's
    response = call_api(producer, "GET", ApiRoute.REDRIVE_PREVIEW.path, retries=0)
    assert response.status == 403, response.body
    assert "execute-api:Invoke" in json.dumps(response.body)


def test_the_operators_signature_opens_the_routes(local_target: Target) -> None:
    """The engine's test credentials are the account root, allowed everything: signed calls pass."""
    preview = call_api(local_target, "GET", ApiRoute.REDRIVE_PREVIEW.path, query={"maxMessages": 1})
    assert preview.status == 200, preview.body
    status = call_api(local_target, "GET", ApiRoute.REDRIVE_STATUS.path, query={"jobId": "no-such-job"})
    assert status.status == 404, status.body
