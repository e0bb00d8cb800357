"""Who acts on the engine while a pipeline runs: an account's root, and roles assumed from a session,
as CodePipeline assumes its pipeline role and then each action's role (CodePipeline User Guide,
"CodePipeline service role" and "Add a cross-account action"), and CodeBuild its project's role."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from lab.localcloud.engine import TEST_SECRET, account_key

# The engine answers at once; retries only hide a refusal a little longer.
CLIENT_CONFIG = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=120)


def account_of(arn: str) -> str:
    """The account id field of an ARN (arn:partition:service:region:account:resource)."""
    parts = arn.split(":")
    if len(parts) < 6 or not parts[4]:
        raise ValueError(f"{arn!r} is not an ARN with an account")
    return parts[4]


@dataclass(frozen=True)
class Session:
    """A boto3 session on the engine and who it is (for logs and error messages)."""

    boto: boto3.session.Session
    identity: str
    endpoint_url: str

    def client(self, service: str) -> Any:
        return self.boto.client(service, endpoint_url=self.endpoint_url, config=CLIENT_CONFIG)

    def environment(self) -> dict[str, str]:
        """The variables that make a child process (AWS CLI, SDKs, CDK CLI) act as this session."""
        credentials = self.boto.get_credentials()
        if credentials is None:
            raise RuntimeError(f"no credentials for {self.identity}")
        frozen = credentials.get_frozen_credentials()
        env = {"AWS_ACCESS_KEY_ID": frozen.access_key, "AWS_SECRET_ACCESS_KEY": frozen.secret_key}
        if frozen.token:
            env["AWS_SESSION_TOKEN"] = frozen.token
        return env


class Sessions:
    """Sessions on one engine, in one region; assumed roles are made once per (role, caller)."""

    def __init__(self, endpoint_url: str, region: str) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self._cache: dict[tuple[str, str], Session] = {}
        self._lock = threading.Lock()

    def root(self, account: str) -> Session:
        boto = boto3.session.Session(
            aws_access_key_id=account_key(account), aws_secret_access_key=TEST_SECRET, region_name=self.region
        )
        return Session(boto, f"arn:aws:iam::{account}:root", self.endpoint_url)

    def assume(self, role_arn: str, via: Session, session_name: str) -> Session:
        """`role_arn` assumed by `via` (sts:AssumeRole is evaluated by the engine: the role's trust
        policy and the caller's permissions)."""
        key = (role_arn, via.identity)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        answer = via.client("sts").assume_role(RoleArn=role_arn, RoleSessionName=session_name[:64])
        credentials = answer["Credentials"]
        boto = boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=self.region,
        )
        session = Session(boto, answer["AssumedRoleUser"]["Arn"], self.endpoint_url)
        with self._lock:
            self._cache[key] = session
        return session
