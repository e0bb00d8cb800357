"""`Ref` of an AWS::SecretsManager::Secret is the secret's ARN, as on AWS.

CloudFormation returns the ARN for Ref of a secret (CloudFormation Template Reference,
AWS::SecretsManager::Secret, "Return values"); ministack returns its name, its physical id. A role
granted secretsmanager:GetSecretValue on `Ref Secret` then holds a grant on a name, which no request
matches: the stage's pipeline-checks role could not read the API key on the engine, while AWS lets it.
The provisioner's own handlers keep the secret by name; these wrappers give CloudFormation the ARN
and hand the handlers the name back.
"""

from __future__ import annotations

from typing import Any

from ministack.services import secretsmanager
from ministack.services.cloudformation import provisioners

from .engine_hooks import require

RESOURCE_TYPE = "AWS::SecretsManager::Secret"


def _storage_key(physical_id: str) -> str:
    """The name the provisioner stores a secret under (physical ids of stacks deployed before this
    patch are names already)."""
    if physical_id.startswith("arn:"):
        key, _secret = secretsmanager._resolve(physical_id)
        return str(key) if key else physical_id
    return physical_id


def install() -> None:
    require(secretsmanager, "_resolve")
    handlers = provisioners._RESOURCE_HANDLERS.get(RESOURCE_TYPE)
    if not handlers or not all(callable(handlers.get(kind)) for kind in ("create", "update", "delete")):
        raise SystemExit(f"engine_patches: ministack's {RESOURCE_TYPE} provisioner changed: update the lab")
    create, update, delete = handlers["create"], handlers["update"], handlers["delete"]

    def create_by_arn(logical_id: str, props: dict[str, Any], stack_name: str) -> tuple[str, dict[str, Any]]:
        _name, attributes = create(logical_id, props, stack_name)
        return str(attributes["Arn"]), attributes

    def update_by_arn(
        physical_id: str,
        old: dict[str, Any],
        new: dict[str, Any],
        stack_name: str,
        logical_id: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        new_id, attributes = update(_storage_key(physical_id), old, new, stack_name, logical_id)
        return str(attributes.get("Arn", new_id)), attributes

    def delete_by_arn(physical_id: str, props: dict[str, Any]) -> None:
        delete(_storage_key(physical_id), props)

    handlers.update(create=create_by_arn, update=update_by_arn, delete=delete_by_arn)
