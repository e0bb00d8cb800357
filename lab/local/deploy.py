"""Deploy the synthesized IngestionLocal stage into the engine with the pinned CDK CLI, and record
its outputs (.lab/outputs.json and .lab/env) in the format lab.target reads."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import boto3

from functions.common.names import STATE_TABLE_PARTITION_KEY, EnvVar, Output, RecordStatus
from lab.local.engine import EngineInfo, aws_env
from lab.local.paths import ACCOUNT_ID, CDK_BIN, REGION, REPO_ROOT, STAGE_NAME, StateDir
from lab.target import Target

BOOTSTRAP_STACK = "CDKToolkit"
# The folders `python -m app` reads (cdk.json's watch list).
SYNTH_SOURCE_DIRS = ("app", "functions", "ops/queries")


class DeployError(RuntimeError):
    """The stage could not be synthesized, deployed or checked."""


def ensure_cdk(log=print) -> Path:
    """The CDK CLI pinned by package-lock.json (npm ci when node_modules lacks it)."""
    if not CDK_BIN.exists():
        log("installing the pinned AWS CDK CLI (npm ci)")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=REPO_ROOT, check=True)  # noqa: S607 - npm from PATH
    return CDK_BIN


def _cdk_env(info: EngineInfo) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(aws_env(info.endpoint_url))
    env.update(
        {
            "CDK_DEFAULT_ACCOUNT": ACCOUNT_ID,
            "CDK_DEFAULT_REGION": REGION,
            "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION": "1",
            "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
            "CDK_DISABLE_CLI_TELEMETRY": "true",
        }
    )
    return env


def _run_cdk(args: list[str], info: EngineInfo, log_file: Path, cwd: Path = REPO_ROOT) -> None:
    command = [str(ensure_cdk()), *args]
    with log_file.open("ab") as log:
        log.write(f"\n$ {shlex.join(command)}\n".encode())
        log.flush()
        result = subprocess.run(  # noqa: S603 - argv of the pinned CDK CLI built here
            command, cwd=cwd, env=_cdk_env(info), stdout=log, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode != 0:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-25:])
        raise DeployError(f"`cdk {args[0]}` failed ({result.returncode}); last lines of {log_file}:\n{tail}")


def synthesize(state: StateDir, info: EngineInfo) -> Path:
    """Synthesize the app into the state dir's own cloud assembly (never the shared cdk.out)."""
    # The app runs on this interpreter (the project venv), whatever `python` the shell has.
    _run_cdk(
        [
            "synth",
            "--app",
            f"{shlex.quote(sys.executable)} -m app",
            "--output",
            str(state.cloud_assembly),
            "--quiet",
        ],
        info,
        state.root / "cdk.log",
    )
    return stage_assembly(state)


def cdk_deploy(state: StateDir, info: EngineInfo) -> None:
    """`cdk deploy` of the stage's stacks from the cloud assembly synthesized before (no re-synth)."""
    args = ["deploy", "--app", str(state.cloud_assembly), f"{STAGE_NAME}/*", "--require-approval", "never"]
    _run_cdk([*args, "--progress", "events"], info, state.root / "cdk.log")


def stage_assembly(state: StateDir) -> Path:
    nested = state.cloud_assembly / f"assembly-{STAGE_NAME}"
    if not nested.is_dir():
        raise DeployError(f"the cloud assembly has no stage {STAGE_NAME} ({nested} is missing)")
    return nested


def stage_stack_names(assembly: Path) -> list[str]:
    """The CloudFormation stack names of the stage, in the assembly's order."""
    manifest = json.loads((assembly / "manifest.json").read_text())
    names = []
    for artifact_id, artifact in manifest.get("artifacts", {}).items():
        if artifact.get("type") == "aws:cloudformation:stack":
            names.append(artifact.get("properties", {}).get("stackName") or artifact_id)
    if not names:
        raise DeployError(f"no stack in {assembly}")
    return names


def fingerprint(assembly: Path) -> str:
    """Templates name their assets by content hash, so the templates alone identify a deployment."""
    digest = hashlib.sha256()
    for template in sorted(assembly.glob("*.template.json")):
        digest.update(template.name.encode())
        digest.update(template.read_bytes())
    return digest.hexdigest()


def source_fingerprint() -> str:
    """What the synthesized stage depends on: the app, the function code, the queries it embeds,
    cdk.json and the pinned CDK library."""
    digest = hashlib.sha256()
    files = [REPO_ROOT / "cdk.json", REPO_ROOT / "requirements.txt"]
    for folder in SYNTH_SOURCE_DIRS:
        files.extend(
            p for p in (REPO_ROOT / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        )
    for path in sorted(files):
        digest.update(str(path.relative_to(REPO_ROOT)).encode())
        digest.update(path.read_bytes() if path.exists() else b"")
    return digest.hexdigest()


def _is_bootstrapped(cfn: Any) -> bool:
    try:
        stacks = cfn.describe_stacks(StackName=BOOTSTRAP_STACK)["Stacks"]
    except cfn.exceptions.ClientError:
        return False
    return bool(stacks) and stacks[0]["StackStatus"].endswith("_COMPLETE")


def deploy_stage(state: StateDir, info: EngineInfo, *, force: bool = False, log=print) -> dict[str, Any]:
    """Bootstrap (once per engine), synthesize, deploy unless this engine already runs the same
    templates, check every function's code, and write outputs.json and env."""
    clients = EngineClients(info)
    cfn = clients("cloudformation")
    started = time.monotonic()
    if not _is_bootstrapped(cfn):
        log("bootstrapping the local account (cdk bootstrap)")
        # Run outside the repo: with no cdk.json in sight the CLI bootstraps the named
        # environment without synthesizing the app first.
        _run_cdk(["bootstrap", f"aws://{ACCOUNT_ID}/{REGION}"], info, state.root / "cdk.log", cwd=state.root)
    sources = source_fingerprint()
    previous = json.loads(state.deploy_json.read_text()) if state.deploy_json.exists() else None
    if (
        not force
        and previous
        and previous.get("sources") == sources
        and previous.get("engineStartedAt") == info.started_at
        and _stacks_complete(cfn, previous["stacks"])
    ):
        # Same app sources on the same engine: synthesizing would give the same templates.
        log(f"{STAGE_NAME} is up to date (app sources unchanged): synth and deploy skipped")
        current, deployed = previous, False
    else:
        log("synthesizing the app (cdk synth)")
        assembly = synthesize(state, info)
        stacks = stage_stack_names(assembly)
        current = {
            "fingerprint": fingerprint(assembly),
            "sources": sources,
            "engineStartedAt": info.started_at,
            "stacks": stacks,
        }
        if not force and previous == current and _stacks_complete(cfn, stacks):
            log(f"{STAGE_NAME} is up to date: deploy skipped")
            deployed = False
        else:
            log(f"deploying {STAGE_NAME} ({', '.join(stacks)}) with the CDK CLI")
            state.deploy_json.unlink(missing_ok=True)
            cdk_deploy(state, info)
            deployed = True
    stacks = list(current["stacks"])
    check_function_code(clients, stacks)
    check_queue_mapping_permissions(clients, stacks)
    outputs = write_outputs(state, info, clients, stacks)
    state.deploy_json.write_text(json.dumps(current, indent=2) + "\n")
    log(f"{STAGE_NAME} ready in {time.monotonic() - started:.1f} s")
    return {"deployed": deployed, "stacks": stacks, "outputs": outputs}


class EngineClients:
    """boto3 clients bound to the engine with its test credentials, created once each."""

    def __init__(self, info: EngineInfo) -> None:
        env = aws_env(info.endpoint_url)
        self._session = boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
        )
        self._endpoint = info.endpoint_url
        self._clients: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(service, endpoint_url=self._endpoint)
        return self._clients[service]


def _stacks_complete(cfn: Any, stacks: list[str]) -> bool:
    for name in stacks:
        try:
            status = cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
        except cfn.exceptions.ClientError:
            return False
        if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            return False
    return True


def _stack_resources(cfn: Any, stack: str, resource_type: str) -> list[str]:
    paginator = cfn.get_paginator("list_stack_resources")
    return [
        summary["PhysicalResourceId"]
        for page in paginator.paginate(StackName=stack)
        for summary in page["StackResourceSummaries"]
        if summary["ResourceType"] == resource_type
    ]


def check_function_code(clients: EngineClients, stacks: list[str]) -> list[str]:
    """Every deployed function must carry its code: the engine answers a function whose asset is
    missing with a canned "Mock response" instead of failing."""
    cfn = clients("cloudformation")
    lam = clients("lambda")
    functions = [fn for stack in stacks for fn in _stack_resources(cfn, stack, "AWS::Lambda::Function")]
    empty = [
        fn for fn in functions if lam.get_function(FunctionName=fn)["Configuration"].get("CodeSize", 0) <= 0
    ]
    if not functions:
        raise DeployError("the deployed stage has no Lambda function")
    if empty:
        raise DeployError(f"deployed functions without code (CodeSize 0, asset missing): {', '.join(empty)}")
    return functions


# What Lambda needs from the execution role to poll an SQS queue (AWS refuses to create or run
# the mapping without them).
SQS_MAPPING_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


def check_queue_mapping_permissions(clients: EngineClients, stacks: list[str]) -> list[str]:
    """The engine polls SQS for a mapping whatever the function's role allows; AWS does not. So
    ask the engine's IAM simulator, with the role's own policies, what AWS would decide."""
    cfn = clients("cloudformation")
    lam = clients("lambda")
    iam = clients("iam")
    checked = []
    for stack in stacks:
        for mapping_id in _stack_resources(cfn, stack, "AWS::Lambda::EventSourceMapping"):
            mapping = lam.get_event_source_mapping(UUID=mapping_id)
            source = mapping.get("EventSourceArn", "")
            if not source.startswith("arn:aws:sqs:"):
                continue
            role_arn = lam.get_function_configuration(FunctionName=mapping["FunctionArn"])["Role"]
            results = iam.simulate_principal_policy(
                PolicySourceArn=role_arn, ActionNames=list(SQS_MAPPING_ACTIONS), ResourceArns=[source]
            )["EvaluationResults"]
            denied = [r["EvalActionName"] for r in results if r["EvalDecision"] != "allowed"]
            if denied:
                raise DeployError(
                    f"the SQS mapping of {mapping['FunctionArn']} cannot poll {source}: its role "
                    f"{role_arn} lacks {', '.join(denied)} (AWS would not run this mapping)"
                )
            checked.append(mapping_id)
    return checked


def write_outputs(
    state: StateDir, info: EngineInfo, clients: EngineClients, stacks: list[str]
) -> dict[str, Any]:
    """outputs.json (read by lab.target) and env (sourced by a shell) for the deployed stage."""
    cfn = clients("cloudformation")
    outputs: dict[str, str] = {}
    for stack in stacks:
        for output in cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", []):
            outputs[output["OutputKey"]] = output["OutputValue"]
    api_url = local_api_url(info.endpoint_url, outputs)
    data: dict[str, Any] = {
        "endpointUrl": info.endpoint_url,
        "region": REGION,
        "apiUrl": api_url,
        "outputs": outputs,
    }
    if outputs.get(Output.AUTH_MODE.value) == "apiKey":
        data["apiKey"] = _api_key(clients, stacks)
    state.outputs_json.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    env = {**aws_env(info.endpoint_url), "API_URL": api_url}
    if "apiKey" in data:
        env["LAB_API_KEY"] = data["apiKey"]
    state.env_file.write_text("".join(f"export {key}={shlex.quote(value)}\n" for key, value in env.items()))
    return data


def local_api_url(endpoint_url: str, outputs: dict[str, str]) -> str:
    """The API base URL every client can use: the ApiUrl output's *.execute-api.localhost host
    resolves for curl but not for Python, while the engine's path form works everywhere."""
    api_id = outputs.get(Output.API_ID.value)
    if not api_id:
        api_output = outputs.get(Output.API_URL.value, "")
        host = api_output.split("://", 1)[-1].split("/", 1)[0]
        api_id = host.split(".", 1)[0] if ".execute-api." in host else ""
    if not api_id:
        raise DeployError(f"the stage outputs name no API ({Output.API_ID.value} / {Output.API_URL.value})")
    return f"{endpoint_url}/_aws/execute-api/{api_id}"


def _api_key(clients: EngineClients, stacks: list[str]) -> str:
    """authMode apiKey: the generated secret the authorizer compares x-api-key against."""
    cfn = clients("cloudformation")
    lam = clients("lambda")
    for stack in stacks:
        for fn in _stack_resources(cfn, stack, "AWS::Lambda::Function"):
            variables = (
                lam.get_function_configuration(FunctionName=fn).get("Environment", {}).get("Variables", {})
            )
            if EnvVar.API_KEY_SECRET_ARN.value in variables:
                secret = clients("secretsmanager").get_secret_value(
                    SecretId=variables[EnvVar.API_KEY_SECRET_ARN.value]
                )
                return str(secret["SecretString"])
    raise DeployError("authMode is apiKey but no function names the API key secret")


def send_sample_events(
    target: Target, count: int, *, timeout: float = 60.0, log=print
) -> list[dict[str, Any]]:
    """POST sample events and wait until the worker recorded each one SUCCEEDED in the table."""
    keys = []
    run = uuid.uuid4().hex[:8]
    for index in range(count):
        # The event schema of functions.common.payload: orderId and amount are required.
        body = json.dumps({"orderId": f"lab-sample-{run}-{index}", "amount": 42.5 + index})
        request = urllib.request.Request(  # noqa: S310 - the local API URL from outputs.json
            f"{target.api_url}/events",
            data=body.encode(),
            headers={"content-type": "application/json", **target.api_headers()},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            keys.append(json.loads(response.read())["idempotencyKey"])
    table = target.client("dynamodb")
    table_name = target.output(Output.TABLE_NAME)
    deadline = time.monotonic() + timeout
    rows: dict[str, dict[str, Any]] = {}
    while len(rows) < len(keys):
        for key in keys:
            if key in rows:
                continue
            item = table.get_item(TableName=table_name, Key={STATE_TABLE_PARTITION_KEY: {"S": key}}).get(
                "Item"
            )
            if item and item.get("status", {}).get("S") == RecordStatus.SUCCEEDED.value:
                rows[key] = {name: next(iter(value.values())) for name, value in item.items()}
        if len(rows) < len(keys):
            if time.monotonic() > deadline:
                missing = [key for key in keys if key not in rows]
                raise DeployError(f"sample events not SUCCEEDED within {timeout:.0f} s: {missing}")
            time.sleep(0.2)
    log(f"{'idempotencyKey':<66} {'status':<10} attempts  processedAt")
    for key in keys:
        row = rows[key]
        log(
            f"{key:<66} {row.get('status', ''):<10} {row.get('attempts', ''):<9} {row.get('processedAt', '')}"
        )
    return [rows[key] for key in keys]
