"""Deploy the synthesized IngestionLocal stage into the local cloud and record its outputs
(.lab/outputs.json, read by the stage client's `local` target, and .lab/env for a shell)."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from typing import Any

from functions.common.names import EnvVar, Output
from lab.harness.cdk import (
    DeployError,
    bootstrap,
    cdk_deploy,
    fingerprint,
    is_bootstrapped,
    source_fingerprint,
    stage_stack_names,
    synthesize,
)
from lab.harness.paths import STAGE_NAME, StateDir
from lab.localcloud.conformance import check_function_code, check_queue_mapping_permissions, stack_resources
from lab.localcloud.engine import REGION, EngineClients, EngineInfo, aws_env
from stage_client.target import API_KEY_ENV, write_local_outputs

Log = Callable[[str], None]


def deploy_stage(
    state: StateDir,
    info: EngineInfo,
    *,
    force: bool = False,
    log: Log = print,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Bootstrap (once per engine), synthesize, deploy unless this engine already runs the same
    templates, check what the engine would let through and AWS would not, and write outputs.json
    and env. overrides: cdk.json keys of the local environment to deploy with (lab.harness.cdk.synthesize)."""
    clients = EngineClients(info)
    cfn = clients("cloudformation")
    started = time.monotonic()
    if not is_bootstrapped(cfn):
        log("bootstrapping the local account (cdk bootstrap)")
        bootstrap(state, info)
    current, deployed = _synthesize_and_deploy(
        state, info, cfn, force=force, log=log, overrides=overrides or {}
    )
    stacks = list(current["stacks"])
    check_function_code(clients, stacks)
    check_queue_mapping_permissions(clients, stacks)
    subscribe_alarm_inbox(clients, stacks)
    outputs = write_outputs(state, info, clients, stacks)
    state.deploy_json.write_text(json.dumps(current, indent=2) + "\n")
    log(f"{STAGE_NAME} ready in {time.monotonic() - started:.1f} s")
    return {"deployed": deployed, "stacks": stacks, "outputs": outputs}


def _synthesize_and_deploy(
    state: StateDir, info: EngineInfo, cfn: Any, *, force: bool, log: Log, overrides: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    """(the deployment record, whether `cdk deploy` ran): skipped when this engine already runs
    what the sources (and the same overrides) would synthesize."""
    sources = source_fingerprint(overrides)
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
        return previous, False
    log("synthesizing the app (cdk synth)")
    assembly = synthesize(state, info, overrides)
    stacks = stage_stack_names(assembly)
    current = {
        "fingerprint": fingerprint(assembly),
        "sources": sources,
        "engineStartedAt": info.started_at,
        "stacks": stacks,
    }
    if not force and previous == current and _stacks_complete(cfn, stacks):
        log(f"{STAGE_NAME} is up to date: deploy skipped")
        return current, False
    log(f"deploying {STAGE_NAME} ({', '.join(stacks)}) with the CDK CLI")
    state.deploy_json.unlink(missing_ok=True)
    cdk_deploy(state, info)
    return current, True


def _stacks_complete(cfn: Any, stacks: list[str]) -> bool:
    for name in stacks:
        try:
            status = cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
        except cfn.exceptions.ClientError:
            return False
        if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            return False
    return True


# The local stand-in for the subscription a deployed stage gives its checks role (see
# docs/local-cloud.md, "Alarm notifications reach someone"): a queue subscribed to the alarm topic,
# where drills see notifications arrive.
ALARM_INBOX_SUFFIX = "-inbox"


def subscribe_alarm_inbox(clients: EngineClients, stacks: list[str]) -> str | None:
    """Subscribe a queue to the stage's alarm topic unless an SQS subscriber is there already;
    returns the subscriber queue's ARN (None: the stage has no alarm topic).

    The queue's policy lets the topic deliver (SNS -> SQS is checked against it, as on AWS); the
    topic's own policy must still let CloudWatch publish, which is what the drills then prove."""
    outputs = stack_outputs(clients, stacks)
    topic_arn = outputs.get(Output.ALARM_TOPIC_ARN.value)
    if not topic_arn:
        return None
    sns, sqs = clients("sns"), clients("sqs")
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic_arn).get("Subscriptions", [])
    existing = [s["Endpoint"] for s in subscriptions if s.get("Protocol") == "sqs"]
    if existing:
        return str(existing[0])
    name = topic_arn.rsplit(":", 1)[1] + ALARM_INBOX_SUFFIX
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    statement = {
        "Effect": "Allow",
        "Principal": {"Service": "sns.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
    }
    sqs.set_queue_attributes(
        QueueUrl=url, Attributes={"Policy": json.dumps({"Version": "2012-10-17", "Statement": [statement]})}
    )
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return str(arn)


def stack_outputs(clients: EngineClients, stacks: list[str]) -> dict[str, str]:
    cfn = clients("cloudformation")
    outputs: dict[str, str] = {}
    for stack in stacks:
        for output in cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", []):
            outputs[output["OutputKey"]] = output["OutputValue"]
    return outputs


def write_outputs(
    state: StateDir, info: EngineInfo, clients: EngineClients, stacks: list[str]
) -> dict[str, Any]:
    """outputs.json (the stage client's `local` target) and env (sourced by a shell)."""
    outputs = stack_outputs(clients, stacks)
    api_url = local_api_url(info.endpoint_url, outputs)
    api_key = _api_key(clients, stacks) if outputs.get(Output.AUTH_MODE.value) == "apiKey" else None
    data = write_local_outputs(
        state.outputs_json,
        endpoint_url=info.endpoint_url,
        region=REGION,
        api_url=api_url,
        outputs=outputs,
        api_key=api_key,
        local_cloud={"duplicatesFile": str(state.duplicates_json), "duplicateShare": info.duplicate_share},
    )
    env = {**aws_env(info.endpoint_url), "API_URL": api_url}
    if api_key is not None:
        env[API_KEY_ENV] = api_key
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
        for fn in stack_resources(cfn, stack, "AWS::Lambda::Function"):
            variables = (
                lam.get_function_configuration(FunctionName=fn).get("Environment", {}).get("Variables", {})
            )
            if EnvVar.API_KEY_SECRET_ARN.value in variables:
                secret = clients("secretsmanager").get_secret_value(
                    SecretId=variables[EnvVar.API_KEY_SECRET_ARN.value]
                )
                return str(secret["SecretString"])
    raise DeployError("authMode is apiKey but no function names the API key secret")
