"""The assembly reader: a pipeline as a cloud assembly synthesizes it, before anything is deployed.

From the pipeline stack's template: the CodePipeline resource's stages, actions and run orders, each
CodeBuild project's buildspec, environment variables and timeout; from the stage assemblies the
deploy actions name: each stack's template, template configuration and outputs. The few intrinsic
functions these hold (Ref, Fn::GetAtt, Fn::Join with the partition) are resolved the way
CloudFormation would for names that the template itself fixes; a reference to a resource of the
stack resolves to its logical id, which is how a build action names its project here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.localcloud.codepipeline.model import (
    Action,
    BuildProject,
    DeclarationError,
    Pipeline,
    artifact_path,
    parse_buildspec,
)

PIPELINE_TYPE = "AWS::CodePipeline::Pipeline"
PROJECT_TYPE = "AWS::CodeBuild::Project"
STACK_ARTIFACT = "aws:cloudformation:stack"
NESTED_ASSEMBLY = "cdk:cloud-assembly"


@dataclass(frozen=True)
class Resolver:
    """Resolves the intrinsic functions of one template to strings."""

    account: str
    region: str
    resources: frozenset[str]
    partition: str = "aws"

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, argument), *_ = value.items()
            if key == "Ref":
                return self._ref(argument)
            if key == "Fn::GetAtt":
                logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return f"{logical_id}.{attribute}"
            if key == "Fn::Join":
                delimiter, parts = argument
                return str(delimiter).join(str(self(part)) for part in parts)
        return {key: self(item) for key, item in value.items()}

    def _ref(self, name: str) -> str:
        pseudo = {
            "AWS::Partition": self.partition,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.resources:
            return name
        raise DeclarationError(f"cannot resolve Ref {name}")


@dataclass(frozen=True)
class StackTemplate:
    """One stack of the assembly: its name, environment, template and the file it came from."""

    artifact_id: str
    stack_name: str
    account: str
    region: str
    template: dict[str, Any]
    path: Path

    def outputs(self) -> dict[str, Any]:
        return dict(self.template.get("Outputs") or {})

    def resources(self, resource_type: str | None = None) -> dict[str, dict[str, Any]]:
        resources = self.template.get("Resources") or {}
        return {k: v for k, v in resources.items() if resource_type is None or v.get("Type") == resource_type}


def _environment(artifact: dict[str, Any]) -> tuple[str, str]:
    """aws://account/region of a stack artifact."""
    env = str(artifact.get("environment", "aws://unknown-account/unknown-region"))
    account, _, region = env.removeprefix("aws://").partition("/")
    return account, region


def read_stacks(assembly_dir: Path) -> dict[str, StackTemplate]:
    """Every stack of an assembly and of its nested assemblies, by artifact id."""
    manifest = json.loads((assembly_dir / "manifest.json").read_text(encoding="utf-8"))
    stacks: dict[str, StackTemplate] = {}
    for artifact_id, artifact in manifest.get("artifacts", {}).items():
        properties = artifact.get("properties") or {}
        if artifact.get("type") == STACK_ARTIFACT:
            path = assembly_dir / properties["templateFile"]
            account, region = _environment(artifact)
            stacks[artifact_id] = StackTemplate(
                artifact_id=artifact_id,
                stack_name=properties.get("stackName") or artifact_id,
                account=account,
                region=region,
                template=json.loads(path.read_text(encoding="utf-8")),
                path=path,
            )
        elif artifact.get("type") == NESTED_ASSEMBLY:
            stacks.update(read_stacks(assembly_dir / properties["directoryName"]))
    return stacks


@dataclass(frozen=True)
class SynthesizedPipeline:
    """The pipeline stack of a cloud assembly, read without deploying anything."""

    assembly_dir: Path
    stack: StackTemplate
    pipeline: Pipeline
    projects: dict[str, BuildProject]
    stacks: dict[str, StackTemplate] = field(repr=False)
    # The artifact that carries the cloud assembly (the synth action's output).
    assembly_artifact: str | None = None

    def project(self, action: Action) -> BuildProject:
        try:
            return self.projects[action.project_name]
        except KeyError:
            raise DeclarationError(f"action {action.name}: no project {action.project_name}") from None

    def buildspec(self, action: Action) -> dict[str, Any]:
        """The action's buildspec: inline in its project, or the file the project names, read from
        the cloud assembly (CDK Pipelines writes large buildspecs next to the templates)."""
        project = self.project(action)
        inline = project.inline_buildspec
        if inline is not None:
            return inline
        return parse_buildspec((self.assembly_dir / project.buildspec).read_text(encoding="utf-8"))

    def deployed_stack(self, action: Action) -> StackTemplate:
        """The stack a CloudFormation action deploys, found by its TemplatePath in the assembly."""
        template_path = action.configuration.get("TemplatePath")
        stack_name = action.configuration.get("StackName")
        if template_path:
            _, relative = artifact_path(str(template_path))
            wanted = (self.assembly_dir / relative).resolve()
            for stack in self.stacks.values():
                if stack.path.resolve() == wanted:
                    return stack
        for stack in self.stacks.values():
            if stack.stack_name == stack_name and stack.artifact_id != self.stack.artifact_id:
                return stack
        raise DeclarationError(f"action {action.name}: no stack {stack_name} in the assembly")

    def stage_stacks(self, stage_name: str) -> list[StackTemplate]:
        """The stacks a stage's CloudFormation actions deploy, in deploy order, once each."""
        stacks: list[StackTemplate] = []
        for group in self.pipeline.stage(stage_name).run_groups():
            for action in group:
                if action.provider == "CloudFormation" and action.configuration.get("TemplatePath"):
                    stack = self.deployed_stack(action)
                    if stack not in stacks:
                        stacks.append(stack)
        return stacks

    def variables_of(self, namespace: str) -> dict[str, Any]:
        """What `#{namespace.X}` can name: the outputs of the stack whose deploy action carries it."""
        for _stage, action in self.pipeline.actions():
            if action.namespace == namespace and action.provider == "CloudFormation":
                prepare = self._prepare_of(action)
                return self.deployed_stack(prepare).outputs()
        raise DeclarationError(f"no action has the namespace {namespace}")

    def _prepare_of(self, execute: Action) -> Action:
        """The CHANGE_SET_REPLACE action whose change set an execute action runs."""
        for _stage, action in self.pipeline.actions():
            if (
                action.configuration.get("StackName") == execute.configuration.get("StackName")
                and action.configuration.get("TemplatePath")
                and action.role_arn == execute.role_arn
            ):
                return action
        raise DeclarationError(f"action {execute.name}: no action prepares its change set")


def load_pipeline(assembly_dir: Path, stack_id: str) -> SynthesizedPipeline:
    """The pipeline stack `stack_id` of the assembly in `assembly_dir` (e.g. cdk.out)."""
    stacks = read_stacks(assembly_dir)
    if stack_id not in stacks:
        raise DeclarationError(f"no stack {stack_id} in {assembly_dir} (stacks: {sorted(stacks)})")
    stack = stacks[stack_id]
    resolve = Resolver(stack.account, stack.region, frozenset(stack.resources()))
    pipelines = stack.resources(PIPELINE_TYPE)
    if len(pipelines) != 1:
        raise DeclarationError(f"{stack_id} holds {len(pipelines)} pipelines, expected one")
    ((logical_id, resource),) = pipelines.items()
    pipeline = Pipeline.from_declaration(resolve(resource.get("Properties") or {}), name=logical_id)
    projects = {
        project_id: BuildProject.from_properties(project_id, resolve(project.get("Properties") or {}))
        for project_id, project in stack.resources(PROJECT_TYPE).items()
    }
    build_outputs = [a.output_artifacts for _s, a in pipeline.actions() if a.category == "Build"]
    return SynthesizedPipeline(
        assembly_dir=assembly_dir,
        stack=stack,
        pipeline=pipeline,
        projects=projects,
        stacks=stacks,
        assembly_artifact=build_outputs[0][0] if build_outputs and build_outputs[0] else None,
    )
