"""AWS::CodePipeline::Pipeline for the engine's CloudFormation: ministack has no CodePipeline, so a
stack holding a pipeline (a CDK Pipelines stack) fails with "Unsupported resource type". This
provisioner stores what CreatePipeline/UpdatePipeline would store, the pipeline declaration with
every name and ARN resolved, in the folder named by STORE_ENV (pipeline_store.py); the lab's
executor (lab.localcloud.codepipeline) runs it. Everything else in such a stack (roles, CodeBuild
projects, the artifact bucket and key) is the engine's own.

AWS refuses a declaration whose artifacts do not flow (CodePipeline User Guide, "CodePipeline
pipeline structure reference": an action's input artifact must be the output artifact of an action
before it; artifact, stage and action names are unique); so does this provisioner, and the stack
rolls back as on AWS.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ministack.core.responses import get_account_id, get_region
from ministack.services.cloudformation import provisioners

from .engine_hooks import LOG, require
from .pipeline_store import (
    STORE_ENV,
    StoredPipeline,
    delete_pipeline,
    read_pipeline,
    structure_errors,
    write_pipeline,
)

RESOURCE_TYPE = "AWS::CodePipeline::Pipeline"


def _store() -> Path:
    folder = os.environ.get(STORE_ENV)
    if not folder:
        raise ValueError(f"{RESOURCE_TYPE}: the engine was started without {STORE_ENV}")
    return Path(folder)


def _record(name: str, props: dict[str, Any], version: int) -> StoredPipeline:
    errors = structure_errors(props)
    if errors:
        raise ValueError(f"{RESOURCE_TYPE} {name}: " + "; ".join(errors))
    return StoredPipeline(
        name=name,
        account=get_account_id(),
        region=get_region(),
        version=version,
        updated_at=time.time(),
        declaration=props,
    )


def _attributes(record: StoredPipeline) -> dict[str, Any]:
    return {"Version": str(record.version)}


def create(logical_id: str, props: dict[str, Any], stack_name: str) -> tuple[str, dict[str, Any]]:
    name = props.get("Name") or provisioners._physical_name(stack_name, logical_id, max_len=100)
    if read_pipeline(_store(), get_account_id(), get_region(), name) is not None:
        raise ValueError(f"{RESOURCE_TYPE}: a pipeline named {name} already exists")
    record = _record(name, props, version=1)
    write_pipeline(_store(), record)
    LOG.warning("codepipeline: created %s (version 1) in %s", name, record.account)
    return name, _attributes(record)


def update(
    physical_id: str, old_props: dict[str, Any], new_props: dict[str, Any], stack_name: str
) -> tuple[str, dict[str, Any]]:
    # A new name replaces the pipeline (CloudFormation: Name is "Replacement").
    name = new_props.get("Name") or physical_id
    if name != physical_id:
        delete(physical_id, old_props)
    previous = read_pipeline(_store(), get_account_id(), get_region(), name)
    changed = previous is None or previous.declaration != new_props
    version = (previous.version if previous else 0) + (1 if changed else 0)
    record = _record(name, new_props, version=version)
    write_pipeline(_store(), record)
    LOG.warning("codepipeline: updated %s (version %d) in %s", name, version, record.account)
    return name, _attributes(record)


def delete(physical_id: str, props: dict[str, Any]) -> None:
    delete_pipeline(_store(), get_account_id(), get_region(), physical_id)


def install() -> None:
    require(provisioners, "_physical_name")
    handlers = provisioners._RESOURCE_HANDLERS
    if RESOURCE_TYPE in handlers:
        raise SystemExit(f"engine_patches: ministack now provisions {RESOURCE_TYPE}: retire this patch")
    handlers[RESOURCE_TYPE] = {"create": create, "update": update, "delete": delete}
