"""The ingestion stage: the four stacks of one environment, deployable alone or by the pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import CfnOutput, Environment, Stage, Tags
from constructs import Construct

from app.config import ALLOW_EXAMPLE_JWT_ISSUER, ConfigError, StageConfig
from app.constructs.fis_experiments import extension_layer_parameter
from app.constructs.functions_code import RUNTIME
from app.constructs.gameday_role import gameday_role_name
from app.constructs.lambda_fn import FunctionSettings, powertools_layer_parameter, powertools_package_version
from app.stacks.api_stack import ApiStack
from app.stacks.functions_stack import FunctionsStack
from app.stacks.observability_stack import ObservabilityStack
from app.stacks.state_stack import StateStack
from functions.common import names


def function_settings(config: StageConfig) -> FunctionSettings:
    """What every function of the stage shares, from its configuration."""
    return FunctionSettings(
        prefix=config.prefix,
        env_name=config.env_name,
        architecture=config.architecture,
        memory_mb=config.function_memory_mb,
        log_level=config.log_level,
        tracing=config.tracing_enabled,
        system_log_level=config.lambda_system_log_level,
        log_retention_days=config.log_retention_days,
        retain_logs=config.deletion_protection,
        powertools_layer_from_ssm=config.powertools_layer_from_ssm,
        powertools_layer_version=config.powertools_layer_version,
    )


@dataclass(frozen=True)
class PublicParameter:
    """A public SSM parameter the stage's templates resolve at deploy time. One that does not exist
    in the stage's region fails the change set of every stack that reads it, so the pipeline checks
    them before it deploys (pipeline/preflight.py)."""

    name: str
    # What the parameter publishes, with the version, for the error that says it is missing.
    release: str


def public_parameters(config: StageConfig) -> list[PublicParameter]:
    """Every public parameter a stage with this configuration resolves (tests/infra/app holds this
    list to the synthesized templates' SSM parameter types)."""
    found = []
    if config.powertools_layer_from_ssm:
        found.append(
            PublicParameter(
                powertools_layer_parameter(config.architecture),
                f"the Powertools for AWS Lambda (Python) {powertools_package_version()} layer "
                f"({config.architecture}, {RUNTIME.name}; pinned in requirements-runtime.txt)",
            )
        )
    if config.fis_enabled:
        found.append(
            PublicParameter(
                extension_layer_parameter(config.architecture),
                f"the AWS FIS Lambda extension 1.x.x layer ({config.architecture})",
            )
        )
    return found


class IngestionStage(Stage):
    """State -> functions -> API -> observability, in one account and region.

    `outputs` maps every names.Output the stage produces to its CfnOutput, whichever stack owns
    the resource, so pipeline steps can use env_from_cfn_outputs.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig, **kwargs: Any) -> None:
        super().__init__(
            scope, construct_id, env=Environment(account=config.account, region=config.region), **kwargs
        )
        if config.trusts_example_issuer and self.node.try_get_context(ALLOW_EXAMPLE_JWT_ISSUER) not in (
            True,
            "true",
        ):
            raise ConfigError(
                f"ingestion.environments.prod.jwtIssuer: {config.jwt_issuer} is the example of cdk.json, "
                "not an identity provider: the prod API would refuse every real token (401). Set "
                "prodJwtIssuer and prodJwtAudience in cdk.context.json or the pipeline's context "
                f"parameter (or -c prodJwtIssuer=...); -c {ALLOW_EXAMPLE_JWT_ISSUER}=true synthesizes "
                "it anyway (tests, a synth without the real context)"
            )
        self.config = config
        functions = function_settings(config)
        self.state = StateStack(
            self,
            "State",
            config=config,
            stack_name=f"{config.prefix}-state",
            description="Ingestion lab: stage state (key, queues, tables, failure switch)",
        )
        self.compute = FunctionsStack(
            self,
            "Functions",
            config=config,
            functions=functions,
            state=self.state,
            stack_name=f"{config.prefix}-functions",
            description="Ingestion lab: functions, event source, event bus",
        )
        self.api = ApiStack(
            self,
            "Api",
            config=config,
            functions=functions,
            compute=self.compute,
            stack_name=f"{config.prefix}-api",
            description="Ingestion lab: HTTP API",
        )
        self.observability = ObservabilityStack(
            self,
            "Observability",
            config=config,
            state=self.state,
            compute=self.compute,
            api=self.api,
            stack_name=f"{config.prefix}-observability",
            description="Ingestion lab: alarms, dashboard, queries, FIS drills, pipeline checks role",
        )
        Tags.of(self).add("Project", names.SERVICE_NAME)
        Tags.of(self).add("Environment", config.env_name)
        self.outputs: dict[names.Output, CfnOutput] = {
            **self.state.outputs,
            **self.compute.outputs,
            **self.api.outputs,
            **self.observability.outputs,
        }

    @property
    def checks_role_name(self) -> str:
        """The role the pipeline's post-deploy steps assume in this stage (deployed when the stage
        has a pipelineAccount), by name: no cross-stage reference needed."""
        return gameday_role_name(self.config.prefix)

    @property
    def api_key_secret_name(self) -> str | None:
        """The name of the API key secret that callers read (authMode apiKey), else None: a name
        resolves in the stage's account without a cross-stage reference."""
        return self.api.api_key.secret_name if self.api.api_key else None
