"""What a CloudFormation execution role must allow for a template, checked before a change set.

On AWS, CloudFormation calls each resource type's handlers as the stack's execution role (RoleARN),
so a permission missing from that role fails the deployment (CloudFormation User Guide,
"CloudFormation service role"). The engine creates resources as its own root whatever the role
allows. So, before a deploy action creates its change set, this module asks the engine's IAM
simulator whether the execution role may call what each resource type's handlers call: the
permissions listed in the type's resource provider schema (`handlers.create/update/delete
.permissions`, as cfn-lint ships them).

Handlers list every permission any use of the type may need (a function in a VPC, a table that
streams to Kinesis); a resource needs those of its own service, of the services its properties
refer to, and IAM calls on the roles it creates or passes. CONDITIONAL_PERMISSIONS names the few
permissions of a type's own service that only one property needs (the schemas do not say which).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cfnlint.schema.manager import PROVIDER_SCHEMA_MANAGER

from lab.localcloud.codepipeline.sessions import Session

HANDLER_KINDS = ("create", "update", "delete")
# Types CloudFormation handles itself: no provider, no permissions of the execution role.
SKIPPED_PREFIXES = ("AWS::CloudFormation::", "AWS::CDK::", "Custom::")
# Own-service permissions a handler calls only when the resource sets one property.
CONDITIONAL_PERMISSIONS: dict[str, dict[str, str]] = {
    "AWS::IAM::Role": {
        "iam:PutRolePermissionsBoundary": "PermissionsBoundary",
        "iam:DeleteRolePermissionsBoundary": "PermissionsBoundary",
    },
    "AWS::IAM::Policy": {
        "iam:PutUserPolicy": "Users",
        "iam:GetUserPolicy": "Users",
        "iam:DeleteUserPolicy": "Users",
        "iam:PutGroupPolicy": "Groups",
        "iam:GetGroupPolicy": "Groups",
        "iam:DeleteGroupPolicy": "Groups",
    },
}
# Properties that bring another service's calls without naming it by reference or ARN (a function's
# VPC is given by subnet ids, a table's Kinesis stream by its ARN only sometimes).
SERVICES_BY_PROPERTY = {
    "VpcConfig": "ec2",
    "FileSystemConfigs": "elasticfilesystem",
    "KinesisStreamSpecification": "kinesis",
}
_ARN_SERVICE = re.compile(r"arn:aws[a-z-]*:([a-z0-9-]+):")
# CloudFormation names an unnamed role <stack>-<logical id>-<suffix> (at most 64 characters).
_GENERATED_SUFFIX = "-ABCDEFGHIJKL"


@dataclass(frozen=True)
class Gap:
    resource_type: str
    logical_id: str
    action: str
    resource: str

    def __str__(self) -> str:
        where = "" if self.resource == "*" else f" on {self.resource}"
        return f"{self.resource_type} ({self.logical_id}) needs {self.action}{where}"


class ExecutionRoleError(RuntimeError):
    """The execution role lacks permissions the template's resources need."""

    def __init__(self, role_arn: str, gaps: list[Gap]) -> None:
        self.gaps = gaps
        listed = "\n  - ".join(str(gap) for gap in gaps[:40])
        more = f"\n  ... and {len(gaps) - 40} more" if len(gaps) > 40 else ""
        super().__init__(
            f"the CloudFormation execution role {role_arn} does not allow what the template deploys "
            f"(AWS would fail the change set):\n  - {listed}{more}"
        )


@lru_cache(maxsize=256)
def handler_permissions(region: str, resource_type: str) -> frozenset[str]:
    """Every permission the type's create, update and delete handlers list (empty: no schema)."""
    try:
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, resource_type).schema
    except Exception:  # cfn-lint raises its own lookup errors for unknown types
        return frozenset()
    handlers = schema.get("handlers") or {}
    return frozenset(
        permission
        for kind in HANDLER_KINDS
        for permission in (handlers.get(kind) or {}).get("permissions", [])
    )


def service_of(permission: str) -> str:
    return permission.split(":", 1)[0]


def _references(value: Any) -> Iterator[str]:
    """Logical ids a property value refers to (Ref, Fn::GetAtt, Fn::Sub's ${Id} / ${Id.Attr})."""
    if isinstance(value, list):
        for item in value:
            yield from _references(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and isinstance(item, str):
                yield item
            elif key == "Fn::GetAtt":
                yield item[0] if isinstance(item, list) else str(item).split(".", 1)[0]
            elif key == "Fn::Sub":
                text = item[0] if isinstance(item, list) else item
                yield from (m.split(".", 1)[0] for m in re.findall(r"\$\{([^}!]+)\}", str(text)))
            else:
                yield from _references(item)


@dataclass(frozen=True)
class TemplateScope:
    """One template as deployed: its stack name, account and region."""

    template: Mapping[str, Any]
    stack_name: str
    account: str
    region: str

    @property
    def resources(self) -> Mapping[str, Mapping[str, Any]]:
        return self.template.get("Resources") or {}

    def role_arn(self, logical_id: str) -> str:
        props = self.resources[logical_id].get("Properties") or {}
        name = props.get("RoleName")
        if not isinstance(name, str):
            name = f"{self.stack_name}-{logical_id}"[: 64 - len(_GENERATED_SUFFIX)] + _GENERATED_SUFFIX
        path = props.get("Path") if isinstance(props.get("Path"), str) else "/"
        return f"arn:aws:iam::{self.account}:role{path}{name}"

    def referenced(self, props: Mapping[str, Any]) -> tuple[set[str], set[str]]:
        """(services, role ARNs) that a resource's properties refer to."""
        services: set[str] = set()
        roles: set[str] = set()
        for logical_id in _references(props):
            target = self.resources.get(logical_id)
            if target is None:
                continue
            target_type = str(target.get("Type", ""))
            if target_type == "AWS::IAM::Role":
                roles.add(self.role_arn(logical_id))
            services.update(service_of(p) for p in handler_permissions(self.region, target_type))
        text = json.dumps(props)
        services.update(_ARN_SERVICE.findall(text))
        services.update(service for key, service in SERVICES_BY_PROPERTY.items() if key in props)
        roles.update(re.findall(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", text))
        return services, roles


def own_services(permissions: frozenset[str]) -> set[str]:
    """The service a type belongs to: the one its handlers call most."""
    counts = Counter(service_of(p) for p in permissions)
    if not counts:
        return set()
    top = max(counts.values())
    return {service for service, count in counts.items() if count == top}


def needed(scope: TemplateScope, logical_id: str) -> dict[str, set[str]]:
    """resource ARN ("*" for non-IAM calls) -> the actions a resource's handlers call on it."""
    resource = scope.resources[logical_id]
    resource_type = str(resource.get("Type"))
    props = resource.get("Properties") or {}
    permissions = handler_permissions(scope.region, resource_type)
    services, roles = scope.referenced(props)
    own = own_services(permissions)
    conditional = CONDITIONAL_PERMISSIONS.get(resource_type, {})
    wanted: dict[str, set[str]] = {}
    for permission in permissions:
        service = service_of(permission)
        if service not in own and service not in services:
            continue
        if permission in conditional and conditional[permission] not in props:
            continue
        if service == "iam":
            targets = roles | ({scope.role_arn(logical_id)} if resource_type == "AWS::IAM::Role" else set())
            for target in targets or ({"*"} if resource_type.startswith("AWS::IAM::") else set()):
                wanted.setdefault(target, set()).add(permission)
        else:
            wanted.setdefault("*", set()).add(permission)
    return wanted


def unknown_types(scope: TemplateScope) -> list[str]:
    """Resource types that have no handler permissions in cfn-lint's schemas: they cannot be checked."""
    return sorted(
        {
            str(r.get("Type"))
            for r in scope.resources.values()
            if not str(r.get("Type")).startswith(SKIPPED_PREFIXES)
            and not handler_permissions(scope.region, str(r.get("Type")))
        }
    )


def find_gaps(scope: TemplateScope, role_arn: str, simulator: Session) -> list[Gap]:
    """Every (type, action, resource) the execution role may not call, by the engine's simulator."""
    iam = simulator.client("iam")
    gaps: list[Gap] = []
    for logical_id, resource in scope.resources.items():
        resource_type = str(resource.get("Type"))
        if resource_type.startswith(SKIPPED_PREFIXES):
            continue
        for target, actions in needed(scope, logical_id).items():
            results = iam.simulate_principal_policy(
                PolicySourceArn=role_arn, ActionNames=sorted(actions), ResourceArns=[target]
            )["EvaluationResults"]
            gaps.extend(
                Gap(resource_type, logical_id, r["EvalActionName"], target)
                for r in results
                if r["EvalDecision"] != "allowed"
            )
    return gaps


def check_execution_role(scope: TemplateScope, role_arn: str, simulator: Session) -> list[str]:
    """Raise ExecutionRoleError naming every gap; the types that could not be checked otherwise."""
    gaps = find_gaps(scope, role_arn, simulator)
    if gaps:
        raise ExecutionRoleError(role_arn, gaps)
    return unknown_types(scope)
