"""A CodePipeline's structure and the CodeBuild projects behind its build actions, from a pipeline
declaration (the AWS::CodePipeline::Pipeline properties, with names and ARNs resolved) and from
CodeBuild's project description (or a template's AWS::CodeBuild::Project properties).

The fields are CodePipeline's (CodePipeline User Guide, "CodePipeline pipeline structure reference")
and CodeBuild's ("Build specification reference"); nothing here runs anything.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import yaml

# CodeBuild's default build timeout when a project sets none (CodeBuild API Reference, Project
# timeoutInMinutes: "The default is 60 minutes").
DEFAULT_BUILD_TIMEOUT_MINUTES = 60
# A V2 pipeline that names no execution mode runs in SUPERSEDED mode (CodePipeline User Guide, "How
# pipeline executions work").
DEFAULT_EXECUTION_MODE = "SUPERSEDED"


class DeclarationError(ValueError):
    """The declaration lacks what running it needs."""


@dataclass(frozen=True)
class EnvironmentVariable:
    name: str
    value: str
    type: str = "PLAINTEXT"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> EnvironmentVariable:
        # CloudFormation spells the keys Name/Value/Type, the CodeBuild API and actions name/value/type.
        return cls(
            name=str(data.get("Name", data.get("name"))),
            value=str(data.get("Value", data.get("value", ""))),
            type=str(data.get("Type", data.get("type", "PLAINTEXT"))),
        )


@dataclass(frozen=True)
class Action:
    """One action of a stage, as declared."""

    name: str
    category: str
    provider: str
    run_order: int
    configuration: Mapping[str, Any]
    input_artifacts: tuple[str, ...]
    output_artifacts: tuple[str, ...]
    namespace: str | None = None
    role_arn: str | None = None

    @classmethod
    def from_declaration(cls, data: Mapping[str, Any]) -> Action:
        action_type = data.get("ActionTypeId") or {}
        return cls(
            name=str(data["Name"]),
            category=str(action_type.get("Category", "")),
            provider=str(action_type.get("Provider", "")),
            run_order=int(data.get("RunOrder", 1)),
            configuration=dict(data.get("Configuration") or {}),
            input_artifacts=tuple(str(a["Name"]) for a in data.get("InputArtifacts") or []),
            output_artifacts=tuple(str(a["Name"]) for a in data.get("OutputArtifacts") or []),
            namespace=data.get("Namespace"),
            role_arn=data.get("RoleArn"),
        )

    @property
    def project_name(self) -> str:
        """A CodeBuild action's project (configuration ProjectName)."""
        name = self.configuration.get("ProjectName")
        if not isinstance(name, str):
            raise DeclarationError(f"action {self.name}: no ProjectName")
        return name

    def environment_variables(self) -> list[EnvironmentVariable]:
        """A CodeBuild action's EnvironmentVariables: a JSON list in its configuration, whose values
        may name variables of earlier actions (#{Namespace.Variable})."""
        raw = self.configuration.get("EnvironmentVariables")
        if not raw:
            return []
        return [EnvironmentVariable.from_mapping(item) for item in json.loads(raw)]

    def describe(self) -> str:
        return f"{self.name} ({self.category}/{self.provider}, run order {self.run_order})"


@dataclass(frozen=True)
class Stage:
    name: str
    actions: tuple[Action, ...]

    def run_groups(self) -> list[list[Action]]:
        """Actions by run order: a group starts when the one before succeeded, and its actions run
        in parallel (CodePipeline User Guide, "Action structure requirements": runOrder)."""
        ordered = sorted(self.actions, key=lambda a: a.run_order)
        return [list(group) for _, group in groupby(ordered, key=lambda a: a.run_order)]

    def action(self, name: str) -> Action:
        for action in self.actions:
            if action.name == name:
                return action
        raise DeclarationError(f"stage {self.name} has no action {name}")


@dataclass(frozen=True)
class Pipeline:
    """A pipeline declaration: its stages in order and what runs them."""

    name: str
    role_arn: str
    pipeline_type: str
    execution_mode: str
    restart_on_update: bool
    stages: tuple[Stage, ...]

    @classmethod
    def from_declaration(cls, props: Mapping[str, Any], *, name: str | None = None) -> Pipeline:
        stages = tuple(
            Stage(str(s["Name"]), tuple(Action.from_declaration(a) for a in s.get("Actions") or []))
            for s in props.get("Stages") or []
        )
        if not stages:
            raise DeclarationError("the pipeline declares no stage")
        return cls(
            name=str(props.get("Name") or name or ""),
            role_arn=str(props.get("RoleArn") or ""),
            pipeline_type=str(props.get("PipelineType") or "V1"),
            execution_mode=str(props.get("ExecutionMode") or DEFAULT_EXECUTION_MODE),
            restart_on_update=bool(props.get("RestartExecutionOnUpdate", False)),
            stages=stages,
        )

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise DeclarationError(f"the pipeline has no stage {name}")

    @property
    def source_actions(self) -> list[Action]:
        return [a for a in self.stages[0].actions if a.category == "Source"]

    def actions(self) -> list[tuple[Stage, Action]]:
        return [(stage, action) for stage in self.stages for action in stage.actions]


@dataclass(frozen=True)
class BuildProject:
    """What a CodeBuild build of this project runs: its buildspec (inline, or a file of the primary
    input), its environment variables, its timeout and the role it runs as."""

    name: str
    buildspec: str
    environment: tuple[EnvironmentVariable, ...]
    timeout_minutes: int
    service_role: str

    @classmethod
    def from_api(cls, project: Mapping[str, Any]) -> BuildProject:
        """From CodeBuild's BatchGetProjects."""
        environment = project.get("environment") or {}
        return cls(
            name=str(project["name"]),
            buildspec=str((project.get("source") or {}).get("buildspec") or ""),
            environment=tuple(
                EnvironmentVariable.from_mapping(v) for v in environment.get("environmentVariables") or []
            ),
            timeout_minutes=int(project.get("timeoutInMinutes") or DEFAULT_BUILD_TIMEOUT_MINUTES),
            service_role=str(project.get("serviceRole") or ""),
        )

    @classmethod
    def from_properties(cls, name: str, props: Mapping[str, Any]) -> BuildProject:
        """From an AWS::CodeBuild::Project's properties (intrinsic functions already resolved)."""
        environment = props.get("Environment") or {}
        return cls(
            name=name,
            buildspec=str((props.get("Source") or {}).get("BuildSpec") or ""),
            environment=tuple(
                EnvironmentVariable.from_mapping(v) for v in environment.get("EnvironmentVariables") or []
            ),
            timeout_minutes=int(props.get("TimeoutInMinutes") or DEFAULT_BUILD_TIMEOUT_MINUTES),
            service_role=str(props.get("ServiceRole") or ""),
        )

    @property
    def inline_buildspec(self) -> dict[str, Any] | None:
        """The buildspec when the project holds it (JSON or YAML); None when it names a file."""
        return parse_buildspec(self.buildspec) if "\n" in self.buildspec.strip() else None


def parse_buildspec(text: str) -> dict[str, Any]:
    """A buildspec document (YAML; JSON is YAML) as a mapping, or DeclarationError."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise DeclarationError(f"the buildspec is not valid YAML: {error}") from None
    if not isinstance(data, dict) or "phases" not in data:
        raise DeclarationError("the buildspec has no phases")
    return data


def build_commands(buildspec: Mapping[str, Any], phase: str = "build") -> list[str]:
    """The commands of one phase of a buildspec, in order."""
    phases = buildspec.get("phases") or {}
    return [str(c) for c in (phases.get(phase) or {}).get("commands") or []]


def artifact_path(reference: str) -> tuple[str, str]:
    """A "ArtifactName::path/inside" reference (TemplatePath, TemplateConfiguration) as its parts."""
    artifact, sep, path = reference.partition("::")
    if not sep or not artifact or not path:
        raise DeclarationError(f"{reference!r} is not ArtifactName::path")
    return artifact, path


def capabilities(value: str | Sequence[str] | None) -> list[str]:
    """A CloudFormation action's Capabilities (a comma-separated string in the configuration)."""
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item.strip()]
