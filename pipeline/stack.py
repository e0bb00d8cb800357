"""The delivery pipeline: git push -> synth + checks -> self-mutation -> dev + checks -> approval -> prod."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import App, Environment, Stack, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_iam as iam
from constructs import Construct

from app import IngestionStage, StageConfig, context_section, stage_context
from pipeline.config import CONTEXT_KEY, OVERRIDE_KEYS, PipelineConfig, pipeline_stage_configs
from pipeline.nag import acknowledge_pipeline_findings
from pipeline.preflight import regional_parameters
from pipeline.steps import StageChecks

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE_JSON = REPO_ROOT / "package.json"
DEFAULT_CLI_VERSION = "2.1148.1"
DEFAULT_ASSETS_CLI_VERSION = "4.7.3"
PIPELINE_STACK_ID = "IngestionPipeline"
CONTEXT_PARAMETER_ENV = "CDK_CONTEXT_PARAMETER"
# The tiers that need no local cloud: the local tier's behaviours are checked again, against the
# real stage, by the dev stage's post-deploy steps.
DEVELOPER_CHECK = "make lint typecheck test-unit test-infra"
SYNTH_COMMANDS = (
    DEVELOPER_CHECK,
    # The real account ids live in an SSM parameter of the pipeline account, never in git.
    f'aws ssm get-parameter --name "${CONTEXT_PARAMETER_ENV}" --query Parameter.Value --output text'
    " > cdk.context.json",
    # Before anything deploys: the public layer parameters the stages resolve exist in their regions.
    ".venv/bin/python -m pipeline.preflight",
    'PATH="$PWD/.venv/bin:$PATH" npx cdk synth',
)


def use_connection_action(connection_arn: str) -> str:
    """The UseConnection action of the service that owns the connection: the ARN's prefix
    (codeconnections for connections created since the rename, codestar-connections before it).
    "When specifying a resource in the IAM policy, the service prefix needs to match that of the
    resource" (Developer Tools console User Guide, "Connections rename - Summary of changes")."""
    service = connection_arn.split(":")[2]
    return f"{service}:UseConnection"


def synth_role_policy(
    stack: Stack, config: PipelineConfig, stages: list[StageConfig]
) -> list[iam.PolicyStatement]:
    """What the synth step reads beyond its checkout: the context parameter, and the public
    parameters its pre-flight looks up in the stages' regions (none when no stage resolves one)."""
    public_parameter_arns = sorted({item.arn for item in regional_parameters(stages)})
    statements = [
        iam.PolicyStatement(
            sid="ReadSynthContext",
            actions=["ssm:GetParameter"],
            resources=[
                stack.format_arn(
                    service="ssm",
                    resource="parameter",
                    resource_name=config.context_parameter_name.lstrip("/"),
                )
            ],
        )
    ]
    if public_parameter_arns:
        statements.append(
            iam.PolicyStatement(
                sid="PreflightPublicParameters", actions=["ssm:GetParameter"], resources=public_parameter_arns
            )
        )
    return statements


def pinned_version(package: str, default: str, package_json: Path = PACKAGE_JSON) -> str:
    """The version of an npm package pinned in package.json (devDependencies)."""
    try:
        version = json.loads(package_json.read_text(encoding="utf-8"))["devDependencies"][package]
    except (OSError, KeyError, ValueError):
        return default
    return str(version).lstrip("^~=")


def cdk_cli_version(package_json: Path = PACKAGE_JSON) -> str:
    """The CDK CLI version pinned in package.json, so the pipeline deploys with the CLI developers use."""
    return pinned_version("aws-cdk", DEFAULT_CLI_VERSION, package_json)


def cdk_assets_version(package_json: Path = PACKAGE_JSON) -> str:
    """The cdk-assets version pinned in package.json: the asset actions would otherwise install
    `cdk-assets@latest` at every run (CDK Pipelines' default), a different tool from one run to the next."""
    return pinned_version("cdk-assets", DEFAULT_ASSETS_CLI_VERSION, package_json)


class IngestionPipelineStack(Stack):
    """The CodePipeline (V2) in the pipeline account; dev and prod are stages it deploys."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PipelineConfig,
        dev: StageConfig,
        prod: StageConfig,
        cli_version: str,
        assets_cli_version: str = DEFAULT_ASSETS_CLI_VERSION,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=Environment(account=config.account, region=config.region),
            description="Ingestion lab: the CDK pipeline (dev -> approval -> prod)",
            **kwargs,
        )
        self.config = config
        source = pipelines.CodePipelineSource.connection(
            config.repository, config.branch, connection_arn=config.connection_arn, trigger_on_push=True
        )
        synth = pipelines.ShellStep(
            "Synth",
            input=source,
            install_commands=["npm ci"],
            commands=list(SYNTH_COMMANDS),
            env={CONTEXT_PARAMETER_ENV: config.context_parameter_name},
            primary_output_directory="cdk.out",
        )
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            pipeline_name=config.pipeline_name,
            pipeline_type=codepipeline.PipelineType.V2,
            synth=synth,
            self_mutation=True,
            cross_account_keys=True,
            enable_key_rotation=True,
            cli_version=cli_version,
            cdk_assets_cli_version=assets_cli_version,
            publish_assets_in_parallel=False,
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(
                    build_image=codebuild.LinuxBuildImage.STANDARD_7_0,
                    compute_type=codebuild.ComputeType.SMALL,
                ),
                partial_build_spec=codebuild.BuildSpec.from_object(
                    {"phases": {"install": {"runtime-versions": {"python": "3.11", "nodejs": "20"}}}}
                ),
            ),
            synth_code_build_defaults=pipelines.CodeBuildOptions(
                role_policy=synth_role_policy(self, config, [dev, prod])
            ),
        )

        self.dev_stage = IngestionStage(self, "Dev", config=dev)
        dev_checks = StageChecks(self, self.dev_stage, config)
        smoke, load, gameday = dev_checks.smoke(), dev_checks.load(), dev_checks.gameday()
        # One after the other: the gameday breaks the worker on purpose, which would fail the load
        # test, and neither is worth running when the smoke test fails.
        load.add_step_dependency(smoke)
        gameday.add_step_dependency(load)
        self.pipeline.add_stage(self.dev_stage, post=[smoke, load, gameday])

        self.prod_stage = IngestionStage(self, "Prod", config=prod)
        prod_checks = StageChecks(self, self.prod_stage, config)
        prod_post = [prod_checks.smoke()]
        if config.gameday_in_prod:
            prod_gameday = prod_checks.gameday()
            prod_gameday.add_step_dependency(prod_post[0])
            prod_post.append(prod_gameday)
        approval = pipelines.ManualApprovalStep(
            "PromoteToProd",
            comment="dev passed smoke, load and gameday checks: approve to deploy the same commit to prod",
        )
        self.pipeline.add_stage(self.prod_stage, pre=[approval], post=prod_post)

        # Materialize the CodePipeline now so the cdk-nag acknowledgements can name its constructs.
        self.pipeline.build_pipeline()
        self._grant_connection_use(config.connection_arn)
        acknowledge_pipeline_findings(self, self.pipeline)

    def _grant_connection_use(self, connection_arn: str) -> None:
        """The source action's role may use the connection under its own service prefix: CDK grants
        codestar-connections:UseConnection only, which a codeconnections ARN does not match."""
        source = self.pipeline.pipeline.node.find_child("Source")
        roles = [node for node in source.node.find_all() if isinstance(node, iam.Role)]
        if not roles:
            raise RuntimeError("the pipeline's Source stage has no action role to grant the connection to")
        for role in roles:
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=[use_connection_action(connection_arn)], resources=[connection_arn]
                )
            )


def pipeline_context(app: App) -> dict[str, Any]:
    """The stage and pipeline context: from the CDK CLI when it runs the app, else from cdk.json
    (as the stages read theirs), plus any override keys given on the command line."""
    context: dict[str, Any] = {**stage_context(app), CONTEXT_KEY: context_section(app, CONTEXT_KEY)}
    for key in OVERRIDE_KEYS:
        if (value := app.node.try_get_context(key)) is not None:
            context[key] = value
    return context


def build_pipeline(app: App) -> IngestionPipelineStack:
    """Add the pipeline stack to `app` (see cdk_app.py), configured from the app's context."""
    config, dev, prod = pipeline_stage_configs(pipeline_context(app))
    return IngestionPipelineStack(
        app,
        PIPELINE_STACK_ID,
        config=config,
        dev=dev,
        prod=prod,
        cli_version=cdk_cli_version(),
        assets_cli_version=cdk_assets_version(),
    )
