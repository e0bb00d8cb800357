"""Where the engine keeps the CodePipeline pipelines CloudFormation creates (engine_patches/codepipeline.py)
and how the lab reads them back: one JSON file per pipeline, under the folder the engine is given.

Shared by the engine (which writes) and the lab's pipeline executor (which reads): standard library
only. A record is {"name", "account", "region", "version", "updatedAt", "declaration"}: the
declaration is the AWS::CodePipeline::Pipeline resource's properties as CloudFormation resolved them
(names and ARNs, no intrinsic functions left); version counts the updates that changed it, as
CodePipeline's GetPipeline `version` does.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Environment of the engine process (set by lab.localcloud.engine.start_engine).
STORE_ENV = "LAB_ENGINE_CODEPIPELINE_DIR"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9.@_-]{1,100}$")


@dataclass(frozen=True)
class StoredPipeline:
    """One pipeline as the engine's CloudFormation last created or updated it."""

    name: str
    account: str
    region: str
    version: int
    updated_at: float
    declaration: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "account": self.account,
            "region": self.region,
            "version": self.version,
            "updatedAt": self.updated_at,
            "declaration": self.declaration,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoredPipeline:
        return cls(
            name=data["name"],
            account=data["account"],
            region=data["region"],
            version=int(data["version"]),
            updated_at=float(data["updatedAt"]),
            declaration=dict(data["declaration"]),
        )


def pipeline_path(root: Path, account: str, region: str, name: str) -> Path:
    """The record's file; names are CodePipeline names ([A-Za-z0-9.@_-], at most 100 characters)."""
    if not _SAFE_NAME.match(name):
        raise ValueError(f"invalid pipeline name {name!r}")
    return root / account / region / f"{name}.json"


def read_pipeline(root: Path, account: str, region: str, name: str) -> StoredPipeline | None:
    path = pipeline_path(root, account, region, name)
    if not path.exists():
        return None
    return StoredPipeline.from_json(json.loads(path.read_text(encoding="utf-8")))


def write_pipeline(root: Path, record: StoredPipeline) -> None:
    """Atomically: the executor may read while CloudFormation updates the pipeline."""
    path = pipeline_path(root, record.account, record.region, record.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def delete_pipeline(root: Path, account: str, region: str, name: str) -> None:
    pipeline_path(root, account, region, name).unlink(missing_ok=True)


def structure_errors(declaration: dict[str, Any]) -> list[str]:
    """The structure rules CodePipeline enforces on CreatePipeline/UpdatePipeline that this lab
    relies on: at least two stages, a first stage of source actions only, unique names, and
    artifacts that flow from an earlier action (or a lower run order of the same stage)."""
    stages = declaration.get("Stages") or []
    errors: list[str] = []
    if len(stages) < 2:
        errors.append("a pipeline must have at least two stages")
    produced: set[str] = set()
    seen_stages: set[str] = set()
    for index, stage in enumerate(stages):
        name = stage.get("Name", "")
        if name in seen_stages:
            errors.append(f"stage name {name!r} is used twice")
        seen_stages.add(name)
        errors.extend(_stage_errors(stage, produced, first=index == 0))
    return errors


def _stage_errors(stage: dict[str, Any], produced: set[str], *, first: bool) -> list[str]:
    errors: list[str] = []
    actions = sorted(stage.get("Actions") or [], key=lambda a: int(a.get("RunOrder", 1)))
    names = [a.get("Name") for a in actions]
    if len(set(names)) != len(names):
        errors.append(f"stage {stage.get('Name')!r} has two actions of one name")
    for run_order in sorted({int(a.get("RunOrder", 1)) for a in actions}):
        group = [a for a in actions if int(a.get("RunOrder", 1)) == run_order]
        for action in group:
            is_source = action.get("ActionTypeId", {}).get("Category") == "Source"
            if is_source != first:
                errors.append(
                    f"action {action.get('Name')!r}: source actions belong to the first stage only, "
                    "and the first stage holds source actions only"
                )
            for artifact in action.get("InputArtifacts") or []:
                if artifact.get("Name") not in produced:
                    errors.append(
                        f"action {action.get('Name')!r}: input artifact {artifact.get('Name')!r} is not "
                        "the output of an earlier action"
                    )
        for action in group:
            for artifact in action.get("OutputArtifacts") or []:
                if artifact.get("Name") in produced:
                    errors.append(f"output artifact {artifact.get('Name')!r} is declared twice")
                produced.add(artifact.get("Name"))
    return errors
