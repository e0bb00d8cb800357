"""The synthesized stages that infra tests read: templates, raw JSON and lookups by construct."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import Stack
from aws_cdk.assertions import Template
from constructs import IConstruct

from app.config import StageConfig
from app.stage import IngestionStage

PIPELINE_ACCOUNT = "999999999999"
ALARM_EMAIL = "oncall@example.com"
WEBHOOK_URL = "https://hooks.example.com/ingestion-alarms"
STACK_KINDS = ("state", "functions", "api", "observability")


Grant = tuple[frozenset[str], frozenset[str]]
"""One IAM statement as (actions, resources), resources normalized by `SynthesizedStage.ref`."""


@dataclass
class SynthesizedStage:
    stage: IngestionStage
    config: StageConfig
    templates: dict[str, Template]
    raw: dict[str, dict[str, Any]]
    files: dict[str, Path]

    def resources(self, kind: str, resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.raw[kind]["Resources"].items()
            if resource["Type"] == resource_type
        }

    def logical_id(self, construct: IConstruct) -> str:
        """The logical id of a construct's CloudFormation resource (an L2 or an L1)."""
        resource = construct.node.default_child or construct
        return Stack.of(construct).get_logical_id(resource)  # type: ignore[arg-type]

    def arn(self, construct: IConstruct) -> str:
        return f"{self.logical_id(construct)}.Arn"

    def ref(self, value: Any) -> str:
        """A CloudFormation value as a comparable string, whichever stack it is read from.

        {"Fn::GetAtt": [id, "Arn"]} -> "id.Arn"; {"Ref": id} -> "id"; an Fn::ImportValue becomes
        what the producing stack exports; Fn::Join joins the normalized parts.
        """
        if isinstance(value, str):
            return value
        if "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
            return f"{logical_id}.{attribute}"
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::ImportValue" in value:
            return self.ref(self._exports()[value["Fn::ImportValue"]])
        if "Fn::Join" in value:
            delimiter, parts = value["Fn::Join"]
            return delimiter.join(self.ref(part) for part in parts)
        raise AssertionError(f"unexpected intrinsic {value}")

    def _exports(self) -> dict[str, Any]:
        return {
            output["Export"]["Name"]: output["Value"]
            for template in self.raw.values()
            for output in template.get("Outputs", {}).values()
            if "Export" in output
        }

    def role_grants(self, role: IConstruct) -> set[Grant]:
        """Every statement attached to a role: its inline policies and the AWS::IAM::Policy resources."""
        kind = Stack.of(role).stack_name.rsplit("-", 1)[1]
        role_id = self.logical_id(role)
        role_resource = self.raw[kind]["Resources"][role_id]
        documents = [policy["PolicyDocument"] for policy in role_resource["Properties"].get("Policies", [])]
        documents += [
            policy["Properties"]["PolicyDocument"]
            for policy in self.resources(kind, "AWS::IAM::Policy").values()
            if {"Ref": role_id} in policy["Properties"]["Roles"]
        ]
        grants: set[Grant] = set()
        for document in documents:
            for statement in document["Statement"]:
                assert statement["Effect"] == "Allow"
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                resources = (
                    statement["Resource"]
                    if isinstance(statement["Resource"], list)
                    else [statement["Resource"]]
                )
                grants.add((frozenset(actions), frozenset(self.ref(r) for r in resources)))
        return grants


@dataclass
class Synthesis:
    outdir: Path
    stages: dict[str, SynthesizedStage]
    validation_error: str | None

    def validation_report(self) -> dict[str, Any]:
        return json.loads((self.outdir / "validation-report.json").read_text())
