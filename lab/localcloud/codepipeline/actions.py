"""The action providers of the local CodePipeline: CodeStarSourceConnection (from a local git
repository), CodeBuild (a build on this machine, as its project's service role), CloudFormation
(change sets through the action's role, with the execution role checked) and Manual approval.

Each provider does what CodePipeline's does with the declared configuration (CodePipeline User Guide,
"Action structure reference" for each provider) and returns an Outcome; the executor records it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import ClientError

from lab.localcloud.codepipeline import cloudformation
from lab.localcloud.codepipeline.codebuild import BuildRequest, collect_artifacts, run_build
from lab.localcloud.codepipeline.execution import (
    APPROVED,
    FAILED,
    REJECTED,
    STOPPED,
    SUCCEEDED,
    ExecutionRecord,
    Link,
    PipelineHome,
)
from lab.localcloud.codepipeline.model import (
    Action,
    BuildProject,
    DeclarationError,
    EnvironmentVariable,
    Pipeline,
    Stage,
    parse_buildspec,
)
from lab.localcloud.codepipeline.sessions import Session, Sessions, account_of

_VARIABLE = re.compile(r"#\{([A-Za-z0-9@_-]+)\.([A-Za-z0-9@_-]+)\}")


class VariableError(DeclarationError):
    """A #{Namespace.Variable} that no earlier action produced."""


def resolve_variables(text: str, variables: Mapping[str, Mapping[str, str]]) -> str:
    """`text` with every #{Namespace.Variable} replaced (CodePipeline User Guide, "Variables
    reference"): a namespace's variables exist once its action succeeded."""

    def value(match: re.Match[str]) -> str:
        namespace, name = match.groups()
        try:
            return str(variables[namespace][name])
        except KeyError:
            raise VariableError(f"the variable #{{{namespace}.{name}}} has no value") from None

    return _VARIABLE.sub(value, text)


@dataclass(frozen=True)
class BuildRuntime:
    """How builds run on this machine: the tools first on PATH (where `npm install -g` puts CLIs,
    the Python the build's `python` is), the base environment, the folders kept between builds
    (CodeBuild's local cache: workspace path -> shared folder) and the files kept after each build
    for the execution's record (globs in the workspace)."""

    tool_paths: tuple[Path, ...]
    base_env: Mapping[str, str]
    cache_links: Mapping[str, Path] = field(default_factory=dict)
    keep: tuple[str, ...] = ()
    shell: str = "bash"


@dataclass
class Runtime:
    """The local CodePipeline's surroundings: the engine, the pipeline's account, the repository the
    source action reads and how builds run."""

    sessions: Sessions
    pipeline_account: str
    region: str
    git_dir: Path
    build: BuildRuntime
    auto_approve: bool = False
    poll_s: float = 1.0
    # Explains a failure (its error and the end of its log) in the caller's terms, e.g. the command
    # that fixes it; None when it has nothing to add.
    explain: Callable[[str], str | None] = field(default=lambda _error: None)

    @property
    def pipeline_root(self) -> Session:
        """The pipeline account's root: stands for the CodePipeline and CodeBuild services, which
        assume the pipeline's and the projects' roles."""
        return self.sessions.root(self.pipeline_account)


@dataclass
class Outcome:
    status: str
    summary: str = ""
    error: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)


@dataclass
class ActionContext:
    runtime: Runtime
    home: PipelineHome
    record: ExecutionRecord
    pipeline: Pipeline
    stage: Stage
    action: Action
    artifacts: dict[str, Path]
    variables: dict[str, dict[str, str]]
    pipeline_session: Session
    stop: threading.Event

    @property
    def work(self) -> Path:
        folder = self.home.work_dir(self.record.id) / "actions" / f"{self.stage.name}.{self.action.name}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @property
    def log(self) -> Path:
        return self.work / "log.txt"

    def say(self, text: str) -> None:
        with self.log.open("a", encoding="utf-8") as log:
            log.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")

    def action_session(self) -> Session:
        """The action's role assumed by the pipeline's role, as CodePipeline does for actionRoleArn."""
        role = self.action.role_arn
        if not role:
            return self.pipeline_session
        self.say(f"assuming the action role {role}")
        return self.runtime.sessions.assume(
            role, self.pipeline_session, f"{self.stage.name}-{self.action.name}"
        )

    def artifact_dir(self, name: str) -> Path:
        if name not in self.artifacts:
            raise DeclarationError(f"action {self.action.name}: artifact {name} does not exist yet")
        return self.artifacts[name]

    def new_artifact(self, name: str) -> Path:
        folder = self.home.work_dir(self.record.id) / "artifacts" / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self.artifacts[name] = folder
        return folder


def simulate(session: Session, role_arn: str, action: str, resource: str) -> bool:
    """Would IAM let `role_arn` call `action` on `resource` (the engine's policy simulator)?"""
    results = session.client("iam").simulate_principal_policy(
        PolicySourceArn=role_arn, ActionNames=[action], ResourceArns=[resource]
    )["EvaluationResults"]
    return all(r["EvalDecision"] == "allowed" for r in results)


# --- Source: CodeStarSourceConnection ---------------------------------------------------------
def run_source(ctx: ActionContext) -> Outcome:
    """The execution's commit as a clean tree (the output artifact holds the files, no .git), and
    the source variables. The action's role must be allowed to use the connection: the IAM action's
    service prefix is the connection ARN's (Developer Tools console User Guide, "Rename of
    connections": codestar-connections or codeconnections)."""
    config = ctx.action.configuration
    connection = str(config.get("ConnectionArn", ""))
    role = ctx.action.role_arn or ctx.pipeline.role_arn
    service = connection.split(":")[2] if connection.count(":") >= 5 else "codeconnections"
    permission = f"{service}:UseConnection"
    if not simulate(ctx.runtime.pipeline_root, role, permission, connection):
        return Outcome(
            FAILED, error=f"the source action's role {role} may not call {permission} on {connection}"
        )
    commit = ctx.record.revision["commit"]
    out = ctx.new_artifact(ctx.action.output_artifacts[0])
    archive = subprocess.run(  # noqa: S603 - git with fixed arguments
        ["git", "--git-dir", str(ctx.runtime.git_dir), "archive", "--format=tar", commit],  # noqa: S607
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        return Outcome(FAILED, error=f"git archive {commit}: {archive.stderr.decode(errors='replace')}")
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)  # noqa: S603, S607
    files = sum(1 for p in out.rglob("*") if p.is_file())
    ctx.say(f"{config.get('FullRepositoryId')}@{config.get('BranchName')}: commit {commit}, {files} files")
    revision = ctx.record.revision
    return Outcome(
        SUCCEEDED,
        summary=f"{commit[:10]} {revision.get('message', '')}".strip(),
        variables={
            "CommitId": commit,
            "BranchName": str(config.get("BranchName", revision.get("branch", ""))),
            "FullRepositoryId": str(config.get("FullRepositoryId", "")),
            "ConnectionArn": connection,
            "CommitMessage": revision.get("message", ""),
            "AuthorDate": revision.get("authorDate", ""),
        },
    )


# --- Build: CodeBuild -------------------------------------------------------------------------
def _project(ctx: ActionContext) -> BuildProject:
    codebuild = ctx.runtime.pipeline_root.client("codebuild")
    projects = codebuild.batch_get_projects(names=[ctx.action.project_name]).get("projects") or []
    if not projects:
        raise DeclarationError(
            f"no CodeBuild project {ctx.action.project_name} in {ctx.runtime.pipeline_account}"
        )
    return BuildProject.from_api(projects[0])


def _next_build_number(ctx: ActionContext, project: str) -> int:
    counter = ctx.home.root / "build-numbers" / f"{project}.txt"
    counter.parent.mkdir(parents=True, exist_ok=True)
    number = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(number))
    return number


def _variable_value(ctx: ActionContext, service: Session, variable: EnvironmentVariable) -> str:
    """A project or action environment variable's value; PARAMETER_STORE and SECRETS_MANAGER are read
    as the build's role, as CodeBuild does."""
    value = resolve_variables(variable.value, ctx.variables)
    if variable.type == "PARAMETER_STORE":
        return str(service.client("ssm").get_parameter(Name=value, WithDecryption=True)["Parameter"]["Value"])
    if variable.type == "SECRETS_MANAGER":
        return str(service.client("secretsmanager").get_secret_value(SecretId=value)["SecretString"])
    return value


def _build_environment(
    ctx: ActionContext, project: BuildProject, service: Session, workspace: Path
) -> dict[str, str]:
    build = ctx.runtime.build
    number = _next_build_number(ctx, project.name)
    env = dict(build.base_env)
    env["PATH"] = os.pathsep.join(
        [*(str(p) for p in build.tool_paths), build.base_env.get("PATH", os.defpath)]
    )
    env.update(service.environment())
    env.update(
        {
            "AWS_ENDPOINT_URL": ctx.runtime.sessions.endpoint_url,
            "AWS_REGION": ctx.runtime.region,
            "AWS_DEFAULT_REGION": ctx.runtime.region,
            "CODEBUILD_BUILD_ID": f"{project.name}:{uuid.uuid4()}",
            "CODEBUILD_BUILD_NUMBER": str(number),
            "CODEBUILD_SRC_DIR": str(workspace),
            "CODEBUILD_INITIATOR": f"codepipeline/{ctx.pipeline.name}",
            "CODEBUILD_RESOLVED_SOURCE_VERSION": ctx.record.revision.get("commit", ""),
            "CODEBUILD_START_TIME": str(int(time.time() * 1000)),
        }
    )
    # The action's variables override the project's (CodePipeline User Guide, CodeBuild action
    # reference: EnvironmentVariables).
    for variable in [*project.environment, *ctx.action.environment_variables()]:
        env[variable.name] = _variable_value(ctx, service, variable)
    return env


def _prepare_workspace(ctx: ActionContext) -> Path:
    """A fresh copy of the primary input artifact, secondary inputs beside it, and the cache links."""
    workspace = ctx.work / "src"
    shutil.rmtree(workspace, ignore_errors=True)
    shutil.copytree(ctx.artifact_dir(ctx.action.input_artifacts[0]), workspace, symlinks=True)
    for relative, shared in ctx.runtime.build.cache_links.items():
        shared.mkdir(parents=True, exist_ok=True)
        link = workspace / relative
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(shared, target_is_directory=True)
    return workspace


def _keep(ctx: ActionContext, workspace: Path) -> list[Link]:
    kept = ctx.work / "kept"
    links = []
    for pattern in ctx.runtime.build.keep:
        for path in sorted(workspace.glob(pattern)):
            if path.is_file():
                target = kept / path.relative_to(workspace)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
                links.append(Link(str(path.relative_to(workspace)), str(target.relative_to(ctx.home.root))))
    return links


def run_codebuild(ctx: ActionContext) -> Outcome:
    """CodePipeline assumes the action's role and starts a build of the project; CodeBuild runs it
    as the project's service role, with the project's buildspec, variables and timeout as deployed."""
    action_session = ctx.action_session()
    project = _project(ctx)
    project_arn = (
        f"arn:aws:codebuild:{ctx.runtime.region}:{ctx.runtime.pipeline_account}:project/{project.name}"
    )
    action_role = ctx.action.role_arn or ctx.pipeline.role_arn
    if not simulate(ctx.runtime.pipeline_root, action_role, "codebuild:StartBuild", project_arn):
        return Outcome(FAILED, error=f"{action_role} may not codebuild:StartBuild {project.name}")
    workspace = _prepare_workspace(ctx)
    buildspec = project.inline_buildspec or parse_buildspec((workspace / project.buildspec).read_text())
    service = ctx.runtime.sessions.assume(
        project.service_role, ctx.runtime.pipeline_root, f"codebuild-{project.name}"
    )
    ctx.say(
        f"{action_session.identity} starts project {project.name} (timeout {project.timeout_minutes} min)"
    )
    ctx.say(f"the build runs as {service.identity}")
    result = run_build(
        BuildRequest(
            buildspec=buildspec,
            source_dir=workspace,
            environment=_build_environment(ctx, project, service, workspace),
            timeout_s=project.timeout_minutes * 60,
            log=ctx.log,
            shell=ctx.runtime.build.shell,
            stop=ctx.stop,
        )
    )
    links = _keep(ctx, workspace)
    if not result.succeeded:
        status = STOPPED if result.status == "STOPPED" else FAILED
        return Outcome(status, error=f"build {result.status}: {result.reason}", links=links)
    for name in ctx.action.output_artifacts:
        collect_artifacts(buildspec, workspace, ctx.new_artifact(name))
    return Outcome(SUCCEEDED, summary=f"build SUCCEEDED in {result.seconds:.0f} s", links=links)


# --- Deploy: CloudFormation -------------------------------------------------------------------
def run_cloudformation(ctx: ActionContext) -> Outcome:
    mode = str(ctx.action.configuration.get("ActionMode", ""))
    deploy = ctx.action_session()
    request = cloudformation.ChangeSetRequest.from_action(ctx.action, ctx.artifacts, ctx.variables)
    if mode == "CHANGE_SET_REPLACE":
        target_root = ctx.runtime.sessions.root(request.account or account_of(deploy.identity))
        result = cloudformation.prepare(deploy, target_root, request, ctx.say)
    elif mode == "CHANGE_SET_EXECUTE":
        result = cloudformation.execute(deploy, request, ctx.say)
    else:
        raise DeclarationError(f"action {ctx.action.name}: CloudFormation ActionMode {mode} is not supported")
    return Outcome(SUCCEEDED, summary=result.summary, variables=result.outputs)


# --- Approval: Manual -------------------------------------------------------------------------
def run_approval(ctx: ActionContext, on_wait: Callable[[], None]) -> Outcome:
    """Waits for `approve` or `reject` (or approves at once with auto_approve, for unattended runs).
    A rejection fails the action and its stage (CodePipeline User Guide, "Manage approval actions")."""
    custom = resolve_variables(str(ctx.action.configuration.get("CustomData", "")), ctx.variables)
    kind = f"approval.{ctx.stage.name}.{ctx.action.name}"
    if ctx.runtime.auto_approve:
        ctx.home.answer(
            ctx.record.id, kind, result=APPROVED, summary="approved unattended (APPROVE=1)", by="auto"
        )
    else:
        ctx.say(f"waiting for approval: {custom}")
        on_wait()
    while True:
        answer = ctx.home.read_answer(ctx.record.id, kind)
        if answer is not None:
            break
        if ctx.stop.is_set() or ctx.home.read_answer(ctx.record.id, "stop"):
            return Outcome(STOPPED, error="stopped while waiting for approval")
        time.sleep(ctx.runtime.poll_s)
    summary = f"{answer['result']} by {answer.get('by', '?')}: {answer.get('summary', '')}".rstrip(": ")
    ctx.say(summary)
    if answer["result"] == REJECTED:
        return Outcome(FAILED, summary=summary, error="the approval was rejected")
    return Outcome(SUCCEEDED, summary=summary)


def run_action(ctx: ActionContext, on_wait: Callable[[], None]) -> Outcome:
    """The action's provider runs it; a failure gets the runtime's explanation appended."""
    outcome = _dispatch(ctx, on_wait)
    if outcome.status == FAILED:
        tail = "\n".join(ctx.log.read_text(errors="replace").splitlines()[-40:]) if ctx.log.exists() else ""
        hint = ctx.runtime.explain(f"{outcome.error}\n{tail}")
        if hint:
            outcome.error = f"{outcome.error} -- {hint}"
            ctx.say(hint)
    return outcome


def _dispatch(ctx: ActionContext, on_wait: Callable[[], None]) -> Outcome:
    """Dispatch by provider; an error becomes a failed outcome with its message."""
    provider = ctx.action.provider
    try:
        if provider in ("CodeStarSourceConnection", "CodeConnections"):
            return run_source(ctx)
        if provider == "CodeBuild":
            return run_codebuild(ctx)
        if provider == "CloudFormation":
            return run_cloudformation(ctx)
        if provider == "Manual":
            return run_approval(ctx, on_wait)
        raise DeclarationError(f"action provider {provider} is not supported by the local CodePipeline")
    except (DeclarationError, ClientError, cloudformation.DeployError, OSError, RuntimeError) as error:
        ctx.say(f"FAILED: {error}")
        return Outcome(FAILED, error=str(error))
