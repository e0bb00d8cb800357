"""Which deployed stage a client talks to: the local cloud (default) or a stage on AWS.

A Target is resolved once, from one of three sources, and every command, drill and load-test gate
takes it as an argument, so the same code runs against 127.0.0.1 and against AWS:
- the local cloud: the outputs file (.lab/outputs.json) that the lab's harness writes after a
  deploy, in the format this module defines (write_local_outputs / load_local_target);
- a deployed stage: its CloudFormation stacks' outputs, found by envName (stacks ingestion-<env>-*),
  with the ordinary AWS credential chain;
- environment variables named like the stage outputs (what a CDK Pipelines step gets through
  env_from_cfn_outputs), e.g. ApiUrl, QueueUrl, DlqUrl, TableName.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.credentials import Credentials

from functions.common.names import API_KEY_HEADER, RESOURCE_PREFIX, Output

REPO_ROOT = Path(__file__).resolve().parent.parent
# The local lab's state folder: the harness deploys there, the client finds the local stage there.
STATE_DIR_ENV = "LAB_STATE_DIR"
OUTPUTS_FILE_NAME = "outputs.json"
API_KEY_ENV = "LAB_API_KEY"
# authMode jwt: a token from the stage's issuer (the lab does not mint tokens).
BEARER_TOKEN_ENV = "LAB_BEARER_TOKEN"  # noqa: S105 - the variable's name, not a token


class TargetError(RuntimeError):
    """The target cannot be resolved (lab not running, stage not deployed, output missing)."""


@dataclass(frozen=True)
class Target:
    """One deployed ingestion stage: its outputs and how to reach its AWS APIs."""

    name: str
    outputs: Mapping[str, str]
    api_url: str
    region: str
    endpoint_url: str | None = None
    api_key: str | None = None
    # What the local cloud's harness records beside the outputs (the at-least-once mode's share and
    # record of duplicates); empty for a stage on AWS.
    local_cloud: Mapping[str, Any] = field(default_factory=dict)
    _clients: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # Not an init field: a copy of the target (dataclasses.replace) resolves credentials afresh.
    _session: list[boto3.session.Session] = field(default_factory=list, init=False, compare=False, repr=False)

    @property
    def is_local(self) -> bool:
        return self.endpoint_url is not None

    def output(self, key: Output) -> str:
        """The value of one stage output, or a TargetError that names it."""
        try:
            return self.outputs[key.value]
        except KeyError:
            raise TargetError(f"target {self.name!r} has no output {key.value!r}") from None

    def optional_output(self, key: Output) -> str | None:
        return self.outputs.get(key.value)

    def client(self, service: str) -> Any:
        """A boto3 client for this target, created once and reused."""
        if service not in self._clients:
            kwargs: dict[str, Any] = {"region_name": self.region}
            if self.endpoint_url:
                kwargs["endpoint_url"] = self.endpoint_url
            self._clients[service] = boto3.client(service, **kwargs)
        return self._clients[service]

    def credentials(self) -> Credentials | None:
        """The caller's AWS credentials (the default chain), which sign the operator routes; one
        session per target, so an assumed role is refreshed rather than assumed on every call."""
        if not self._session:
            self._session.append(boto3.session.Session(region_name=self.region))
        return self._session[0].get_credentials()

    def api_headers(self) -> dict[str, str]:
        """Headers every API call needs: x-api-key (authMode apiKey) and/or a bearer token (jwt)."""
        headers = {API_KEY_HEADER: self.api_key} if self.api_key else {}
        token = os.environ.get(BEARER_TOKEN_ENV)
        if token:
            headers["authorization"] = f"Bearer {token}"
        return headers


def default_state_dir() -> Path:
    """$LAB_STATE_DIR, else .lab/ in the checkout (read at call time, so tests can redirect it)."""
    return Path(os.environ.get(STATE_DIR_ENV) or REPO_ROOT / ".lab")


def write_local_outputs(
    outputs_file: Path,
    *,
    endpoint_url: str,
    region: str,
    api_url: str,
    outputs: Mapping[str, str],
    api_key: str | None = None,
    local_cloud: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Record a stage deployed on the local cloud, for load_local_target; returns what was written."""
    data: dict[str, Any] = {
        "endpointUrl": endpoint_url,
        "region": region,
        "apiUrl": api_url,
        "outputs": dict(outputs),
    }
    if api_key is not None:
        data["apiKey"] = api_key
    if local_cloud:
        data["localCloud"] = dict(local_cloud)
    outputs_file.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return data


def load_local_target(outputs_file: Path | None = None) -> Target:
    """The local cloud started by `lab up` (its outputs file, by default in the state dir)."""
    outputs_file = outputs_file or default_state_dir() / OUTPUTS_FILE_NAME
    if not outputs_file.exists():
        raise TargetError(f"the local lab is not up ({outputs_file} is missing): run `make lab` or `lab up`")
    data = json.loads(outputs_file.read_text())
    endpoint = data["endpointUrl"]
    # boto3 clients created by the lab and by subprocesses must reach the engine, with the
    # engine's test credentials, whatever the caller's shell holds.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    return Target(
        name="local",
        outputs=data["outputs"],
        api_url=data["apiUrl"].rstrip("/"),
        region=data["region"],
        endpoint_url=endpoint,
        api_key=data.get("apiKey") or os.environ.get(API_KEY_ENV),
        local_cloud=data.get("localCloud", {}),
    )


def load_stage_target(env_name: str, region: str | None = None, *, cfn: Any = None) -> Target:
    """A deployed stage, by its envName (its stacks are named ingestion-<envName>-*)."""
    prefix = f"{RESOURCE_PREFIX}-{env_name}-"
    session = boto3.session.Session(region_name=region)
    cfn = cfn or session.client("cloudformation")
    outputs: dict[str, str] = {}
    paginator = cfn.get_paginator("describe_stacks")
    for page in paginator.paginate():
        for stack in page["Stacks"]:
            if stack["StackName"].startswith(prefix):
                for out in stack.get("Outputs", []):
                    outputs[out["OutputKey"]] = out["OutputValue"]
    if not outputs:
        raise TargetError(f"no CloudFormation stack named {prefix}* with outputs in this account/region")
    return _from_outputs(env_name, outputs, session.region_name or "us-east-1")


LOCAL_API_HOST_SUFFIX = ".execute-api.localhost"
LOCAL_API_PATH = "/_aws/execute-api/"


def reachable_api_url(api_url: str, endpoint_url: str | None) -> str:
    """An API URL every client can open. On the local cloud, an API's ApiUrl output names a host
    under execute-api.localhost, which curl resolves (RFC 6761 reserves .localhost for loopback) and
    Python's resolver does not; the engine serves the same API at <endpoint>/_aws/execute-api/<id>."""
    host = api_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    if not endpoint_url or not host.endswith(LOCAL_API_HOST_SUFFIX):
        return api_url
    api_id = host.removesuffix(LOCAL_API_HOST_SUFFIX)
    return f"{endpoint_url.rstrip('/')}{LOCAL_API_PATH}{api_id}"


def load_env_target(environ: Mapping[str, str] = os.environ) -> Target:
    """A stage described by environment variables named like its outputs (pipeline steps)."""
    outputs = {key.value: environ[key.value] for key in Output if key.value in environ}
    if Output.API_URL.value not in outputs:
        raise TargetError(f"environment variable {Output.API_URL.value} is not set")
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    endpoint = environ.get("AWS_ENDPOINT_URL")
    outputs[Output.API_URL.value] = reachable_api_url(outputs[Output.API_URL.value], endpoint)
    return _from_outputs("env", outputs, region, endpoint)


def _from_outputs(name: str, outputs: dict[str, str], region: str, endpoint: str | None = None) -> Target:
    try:
        api_url = outputs[Output.API_URL.value].rstrip("/")
    except KeyError:
        raise TargetError(f"target {name!r} has no {Output.API_URL.value} output") from None
    return Target(
        name=name,
        outputs=outputs,
        api_url=api_url,
        region=region,
        endpoint_url=endpoint,
        api_key=os.environ.get(API_KEY_ENV),
    )


def resolve_target(spec: str | None = None) -> Target:
    """`local` (default), `env`, or `stage:<envName>` (e.g. stage:dev, a stage deployed to AWS)."""
    spec = spec or os.environ.get("LAB_TARGET", "local")
    if spec == "local":
        return load_local_target()
    if spec == "env":
        return load_env_target()
    if spec.startswith("stage:"):
        return load_stage_target(spec.split(":", 1)[1])
    raise TargetError(f"unknown target {spec!r}: use local, env or stage:<envName>")
