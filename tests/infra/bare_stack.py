"""One construct on a bare Stack: its synthesized template and lookups by construct (the tests of
app/constructs and app/components)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from aws_cdk import App, Environment, Stack
from aws_cdk.assertions import Template
from constructs import IConstruct

from app.constructs.lambda_fn import FunctionSettings, LambdaFn
from tests.infra.synth import Grant

ACCOUNT = "123456789012"
REGION = "eu-west-1"
FUNCTIONS = FunctionSettings(
    prefix="ingestion-test",
    env_name="test",
    architecture="arm64",
    memory_mb=512,
    log_level="INFO",
    log_retention_days=7,
    retain_logs=False,
    powertools_layer_from_ssm=False,
    powertools_layer_version=36,
)
XRAY: Grant = (frozenset({"xray:PutTraceSegments", "xray:PutTelemetryRecords"}), frozenset({"*"}))


class BareStack:
    """A Stack alone in its App (account and region known); synthesized when first read, so build
    every construct of the test before the first look at the template."""

    def __init__(self, outdir: Path) -> None:
        self.app = App(outdir=str(outdir))
        self.stack = Stack(self.app, "Bare", env=Environment(account=ACCOUNT, region=REGION))

    @cached_property
    def template(self) -> Template:
        return Template.from_stack(self.stack)

    @property
    def raw(self) -> dict[str, Any]:
        return dict(self.template.to_json())

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {lid: r for lid, r in self.raw["Resources"].items() if r["Type"] == resource_type}

    def props(self, construct: IConstruct) -> dict[str, Any]:
        return dict(self.raw["Resources"][self.logical_id(construct)].get("Properties", {}))

    def logical_id(self, construct: IConstruct) -> str:
        resource = construct.node.default_child or construct
        return self.stack.get_logical_id(resource)  # type: ignore[arg-type]

    def arn(self, construct: IConstruct) -> str:
        return f"{self.logical_id(construct)}.Arn"

    def ref(self, value: Any) -> str:
        """{"Fn::GetAtt": [id, "Arn"]} -> "id.Arn"; {"Ref": id} -> "id"; Fn::Join joined."""
        if isinstance(value, str):
            return value
        if "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
            return f"{logical_id}.{attribute}"
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::Join" in value:
            delimiter, parts = value["Fn::Join"]
            return str(delimiter).join(self.ref(part) for part in parts)
        raise AssertionError(f"unexpected intrinsic {value}")

    def grants(self, function: LambdaFn) -> set[Grant]:
        """Every statement of the function's role (inline and attached policies), minus the two every
        function gets (its log group, X-Ray)."""
        role_id = self.logical_id(function.role)
        documents = [
            p["PolicyDocument"] for p in self.raw["Resources"][role_id]["Properties"].get("Policies", [])
        ]
        documents += [
            p["Properties"]["PolicyDocument"]
            for p in self.resources("AWS::IAM::Policy").values()
            if {"Ref": role_id} in p["Properties"]["Roles"]
        ]
        grants = set()
        for document in documents:
            for statement in document["Statement"]:
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                resources = (
                    statement["Resource"]
                    if isinstance(statement["Resource"], list)
                    else [statement["Resource"]]
                )
                grants.add((frozenset(actions), frozenset(self.ref(r) for r in resources)))
        logs = (
            frozenset({"logs:CreateLogStream", "logs:PutLogEvents"}),
            frozenset({self.arn(function.log_group)}),
        )
        assert {logs, XRAY} <= grants
        return grants - {logs, XRAY}
