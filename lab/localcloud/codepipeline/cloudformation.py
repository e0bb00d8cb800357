"""The CloudFormation deploy action's two change-set modes, as CodePipeline runs them with the
action's role (CodePipeline User Guide, "AWS CloudFormation deploy action reference"):

- CHANGE_SET_REPLACE creates the change set from the template and template configuration of an
  input artifact, after deleting one of the same name; a change set without changes succeeds.
- CHANGE_SET_EXECUTE executes it and waits for the stack; the stack's outputs become the action's
  variables (#{Namespace.OutputKey}).

Before creating the change set, the execution role named by RoleArn is checked against what the
template's resources need (execution_role.py): the engine itself would deploy whatever it allows.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from lab.localcloud.codepipeline.execution_role import TemplateScope, check_execution_role
from lab.localcloud.codepipeline.model import Action, DeclarationError, artifact_path, capabilities
from lab.localcloud.codepipeline.sessions import Session, account_of

# CreateChangeSet refuses a TemplateBody longer than this (CloudFormation API Reference,
# CreateChangeSet: TemplateBody "Maximum length of 51200").
TEMPLATE_BODY_LIMIT = 51_200
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
WAIT_TIMEOUT_S = 1800.0
POLL_S = 1.0

Say = Callable[[str], None]


class DeployError(RuntimeError):
    """The change set or the stack did not reach the state the action waits for."""


@dataclass(frozen=True)
class ChangeSetRequest:
    stack_name: str
    change_set_name: str
    template: dict[str, Any] | None = None
    parameters: list[dict[str, str]] = field(default_factory=list)
    tags: list[dict[str, str]] = field(default_factory=list)
    capabilities: list[str] = field(default_factory=list)
    role_arn: str | None = None

    @property
    def account(self) -> str | None:
        return account_of(self.role_arn) if self.role_arn else None

    @classmethod
    def from_action(
        cls, action: Action, artifacts: Mapping[str, Path], variables: Mapping[str, Mapping[str, str]]
    ) -> ChangeSetRequest:
        config = action.configuration
        template = configuration = None
        if config.get("TemplatePath"):
            template = _read_artifact_json(str(config["TemplatePath"]), artifacts)
        if config.get("TemplateConfiguration"):
            configuration = _read_artifact_json(str(config["TemplateConfiguration"]), artifacts)
        configuration = configuration or {}
        parameters = dict(configuration.get("Parameters") or {})
        if config.get("ParameterOverrides"):
            parameters.update(json.loads(str(config["ParameterOverrides"])))
        return cls(
            stack_name=str(config["StackName"]),
            change_set_name=str(config.get("ChangeSetName") or "PipelineChange"),
            template=template,
            parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in parameters.items()],
            tags=[{"Key": k, "Value": str(v)} for k, v in (configuration.get("Tags") or {}).items()],
            capabilities=capabilities(config.get("Capabilities")),
            role_arn=str(config["RoleArn"]) if config.get("RoleArn") else None,
        )


def _read_artifact_json(reference: str, artifacts: Mapping[str, Path]) -> dict[str, Any]:
    name, relative = artifact_path(reference)
    if name not in artifacts:
        raise DeclarationError(f"{reference}: artifact {name} is not an input of this action")
    path = artifacts[name] / relative
    if not path.is_file():
        raise DeclarationError(f"{reference}: no file {relative} in artifact {name}")
    return dict(json.loads(path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class DeployResult:
    summary: str
    outputs: dict[str, str] = field(default_factory=dict)


def _stack_status(cfn: Any, stack_name: str) -> str | None:
    try:
        return str(cfn.describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"])
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise


def _wait_change_set(cfn: Any, request: ChangeSetRequest) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while True:
        described = cfn.describe_change_set(
            StackName=request.stack_name, ChangeSetName=request.change_set_name
        )
        if described["Status"] in ("CREATE_COMPLETE", "FAILED"):
            return dict(described)
        if time.monotonic() > deadline:
            raise DeployError(f"change set {request.change_set_name} still {described['Status']}")
        time.sleep(POLL_S)


def prepare(deploy: Session, target_root: Session, request: ChangeSetRequest, say: Say) -> DeployResult:
    """CHANGE_SET_REPLACE: check the execution role, replace the change set, wait until it is ready."""
    if request.template is None:
        raise DeclarationError(f"{request.stack_name}: CHANGE_SET_REPLACE needs a TemplatePath")
    body = json.dumps(request.template)
    if len(body) > TEMPLATE_BODY_LIMIT:
        raise DeployError(
            f"{request.stack_name}: the template is {len(body)} bytes, over TemplateBody's limit"
        )
    if request.role_arn:
        scope = TemplateScope(
            request.template, request.stack_name, account_of(request.role_arn), deploy.boto.region_name
        )
        unchecked = check_execution_role(scope, request.role_arn, target_root)
        say(
            f"execution role {request.role_arn} allows every handler permission of the template"
            + (f" (no schema to check: {', '.join(unchecked)})" if unchecked else "")
        )
    cfn = deploy.client("cloudformation")
    status = _stack_status(cfn, request.stack_name)
    if status is not None:
        # CHANGE_SET_REPLACE: a change set of that name is deleted first (none there is fine).
        with contextlib.suppress(ClientError):
            cfn.delete_change_set(StackName=request.stack_name, ChangeSetName=request.change_set_name)
    change_type = "CREATE" if status in (None, "REVIEW_IN_PROGRESS") else "UPDATE"
    kwargs: dict[str, Any] = {}
    if request.role_arn:
        kwargs["RoleARN"] = request.role_arn
    cfn.create_change_set(
        StackName=request.stack_name,
        ChangeSetName=request.change_set_name,
        ChangeSetType=change_type,
        TemplateBody=body,
        Parameters=request.parameters,
        Tags=request.tags,
        Capabilities=request.capabilities,
        **kwargs,
    )
    described = _wait_change_set(cfn, request)
    if described["Status"] == "FAILED":
        reason = str(described.get("StatusReason", ""))
        if any(marker in reason for marker in NO_CHANGES):
            say(f"{request.stack_name}: no changes")
            return DeployResult("no changes")
        raise DeployError(f"change set {request.change_set_name} of {request.stack_name} FAILED: {reason}")
    changes = len(described.get("Changes") or [])
    say(f"{request.stack_name}: change set {change_type} with {changes} changes, as {deploy.identity}")
    return DeployResult(f"{change_type.lower()}: {changes} changes")


def _failure_reason(cfn: Any, stack_name: str) -> str:
    events = cfn.describe_stack_events(StackName=stack_name).get("StackEvents", [])
    failed = [e for e in events if str(e.get("ResourceStatus", "")).endswith("FAILED")]
    return "; ".join(f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}" for e in failed[:5])


def _outputs(cfn: Any, stack_name: str) -> dict[str, str]:
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}


def execute(deploy: Session, request: ChangeSetRequest, say: Say) -> DeployResult:
    """CHANGE_SET_EXECUTE: run the change set and wait for the stack; its outputs are the variables."""
    cfn = deploy.client("cloudformation")
    try:
        described = cfn.describe_change_set(
            StackName=request.stack_name, ChangeSetName=request.change_set_name
        )
    except ClientError as error:
        raise DeployError(f"{request.stack_name}: no change set {request.change_set_name}: {error}") from None
    if described["Status"] == "FAILED" and any(
        m in str(described.get("StatusReason", "")) for m in NO_CHANGES
    ):
        return DeployResult("no changes", _outputs(cfn, request.stack_name))
    cfn.execute_change_set(StackName=request.stack_name, ChangeSetName=request.change_set_name)
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while True:
        status = _stack_status(cfn, request.stack_name) or "DELETED"
        if not status.endswith("_IN_PROGRESS"):
            break
        if time.monotonic() > deadline:
            raise DeployError(f"{request.stack_name} still {status}")
        time.sleep(POLL_S)
    if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        raise DeployError(f"{request.stack_name} ended {status}: {_failure_reason(cfn, request.stack_name)}")
    outputs = _outputs(cfn, request.stack_name)
    say(f"{request.stack_name}: {status}, {len(outputs)} outputs")
    return DeployResult(status, outputs)
