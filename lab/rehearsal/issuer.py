"""prod's identity provider on the local cloud: a Cognito user pool, whose tokens the engine's JWT
authorizer verifies for real (signature from the pool's JWKS, issuer, audience, expiry), and the
bearer token of the prod smoke test, stored where the pipeline's smoke step reads it (a secret of the
pipeline account; docs/delivery.md, "Create the connection": refresh it before it expires).

The pool lives in the engine's own account: Cognito's InitiateAuth is unsigned, so the engine serves
it from its default account, as an identity provider outside the three accounts would be.
"""

from __future__ import annotations

import secrets

from botocore.exceptions import ClientError

from lab.localcloud.engine import EngineClients, EngineInfo
from lab.rehearsal.profile import Issuer

POOL_NAME = "lab-pipeline-issuer"
CLIENT_NAME = "prod-smoke"
SMOKE_USER = "pipeline-smoke"


def create_issuer(info: EngineInfo, region: str) -> tuple[Issuer, str]:
    """A new pool, app client and user; (the issuer, the user's password)."""
    cognito = EngineClients(info)("cognito-idp")
    pool = cognito.create_user_pool(PoolName=POOL_NAME)["UserPool"]["Id"]
    client = cognito.create_user_pool_client(
        UserPoolId=pool,
        ClientName=CLIENT_NAME,
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    password = "Lab-" + secrets.token_urlsafe(18) + "-9a"
    cognito.admin_create_user(UserPoolId=pool, Username=SMOKE_USER, MessageAction="SUPPRESS")
    cognito.admin_set_user_password(UserPoolId=pool, Username=SMOKE_USER, Password=password, Permanent=True)
    return Issuer(pool_id=pool, client_id=client, region=region), password


def issue_token(info: EngineInfo, issuer: Issuer, password: str) -> str:
    """A fresh ID token (its `aud` is the app client, which prod's jwtAudience lists)."""
    cognito = EngineClients(info)("cognito-idp")
    answer = cognito.initiate_auth(
        ClientId=issuer.client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": SMOKE_USER, "PASSWORD": password},
    )
    return str(answer["AuthenticationResult"]["IdToken"])


def store_token(info: EngineInfo, pipeline_account: str, secret_name: str, token: str) -> None:
    """Create or update the pipeline account's secret that the prod smoke step reads."""
    secrets_manager = EngineClients(info, pipeline_account)("secretsmanager")
    try:
        secrets_manager.put_secret_value(SecretId=secret_name, SecretString=token)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        secrets_manager.create_secret(Name=secret_name, SecretString=token)
