"""The post-deploy checks of a stage (smoke, load, gameday) as CDK Pipelines CodeBuild steps.

Each step runs its command through pipeline/scripts/in_stage.sh, which assumes the stage's checks
role (IngestionStage.checks_role_name) and fetches the API credential; the stage outputs a command reads
arrive as environment variables named like the outputs (stage_client.target.load_env_target reads them).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from aws_cdk import ArnFormat, Duration, Stack, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_iam as iam
from constructs import Construct

from app import IngestionStage
from functions.common import names
from pipeline.config import LoadTestSettings, PipelineConfig

IN_STAGE = "pipeline/scripts/in_stage.sh"
SMOKE = "pipeline/scripts/smoke.sh"


def script(path: str) -> str:
    """A step script as the steps run it: through bash, since the artifact zip that carries the
    checkout to CodeBuild may drop the executable bit."""
    return f"bash {path}"


# The prefix of every check command: the command runs inside the stage (in_stage.sh).
IN_STAGE_COMMAND = script(IN_STAGE)
# Read by in_stage.sh (names of variables and secrets, no secret values).
STAGE_ROLE_ARN_ENV = "STAGE_ROLE_ARN"
STAGE_REGION_ENV = "STAGE_REGION"
API_KEY_SECRET_ID_ENV = "API_KEY_SECRET_ID"  # noqa: S105
JWT_SECRET_ID_ENV = "JWT_SECRET_ID"  # noqa: S105
# The project's pinned tools (Locust, boto3); stage_client/, lab/ and loadtest/ run from the checkout.
INSTALL_CHECK_TOOLS = ("python -m pip install --quiet -r requirements-dev.txt",)
Out = names.Output
# What each command reads. CodePipeline caps an action's configuration at 1000 characters and every
# output passed here costs ~80 of them, so each step takes only the outputs its command uses.
SMOKE_OUTPUTS = (Out.API_URL, Out.AUTH_MODE)
LOAD_OUTPUTS = (Out.API_URL, Out.AUTH_MODE, Out.TABLE_NAME, Out.EVENT_AUDIT_QUEUE_URL)
GAMEDAY_OUTPUTS = (
    Out.API_URL,
    Out.AUTH_MODE,
    Out.QUEUE_URL,
    Out.DLQ_URL,
    Out.DLQ_NAME,
    Out.QUARANTINE_QUEUE_URL,
    Out.EVENT_AUDIT_QUEUE_URL,
    Out.TABLE_NAME,
    # The stage's alarms are the ones notifying this topic (stage_client.status.stage_alarms).
    Out.ALARM_TOPIC_ARN,
)


def stage_role_arn(scope: Construct, stage: IngestionStage) -> str:
    """The checks role of `stage`, by its deterministic name: no cross-stage reference needed."""
    return Stack.of(scope).format_arn(
        service="iam",
        region="",
        account=stage.config.account,
        resource="role",
        resource_name=stage.checks_role_name,
    )


def load_test_command(settings: LoadTestSettings, env_name: str) -> str:
    """`python -m loadtest` (Locust headless, then the gate) with the context's settings."""
    args = [
        "python", "-m", "loadtest", "--target", "env",
        "--users", str(settings.users),
        "--spawn-rate", f"{settings.spawn_rate:g}",
        "--run-time", settings.run_time,
        "--rps-per-user", f"{settings.rps_per_user:g}",
        "--duplicate-pool-size", str(settings.duplicate_pool_size),
        "--max-failure-ratio", f"{settings.max_failure_ratio:g}",
        "--max-p95-ms", f"{settings.max_p95_ms:g}",
        "--min-requests", str(settings.min_requests),
        "--verify-timeout", str(settings.verify_timeout_seconds),
        "--out-dir", f"reports/loadtest/{env_name}",
    ]  # fmt: skip
    return shlex.join(args)


# `lab gameday ...` through the interpreter: console scripts that pip installs are not always on
# CodeBuild's PATH (its Python comes from pyenv shims).
GAMEDAY_COMMAND = "python -m lab.cli gameday poison-pill --target env"
# Runs even when the gameday fails or is interrupted: the stage must never stay broken.
RESET_FAILURE_MODE_COMMAND = shlex.join(
    [
        "aws", "ssm", "put-parameter", "--name", names.FAILURE_MODE_PARAMETER,
        "--value", names.FailureMode.NONE.value, "--type", "String", "--overwrite",
    ]
)  # fmt: skip


class StageChecks:
    """Builds the CodeBuild steps that check one deployed stage; all of them act as its checks role."""

    def __init__(self, scope: Construct, stage: IngestionStage, config: PipelineConfig) -> None:
        self.stage = stage
        self.config = config
        self.role_arn = stage_role_arn(scope, stage)
        self.jwt_secret_arn = Stack.of(scope).format_arn(
            service="secretsmanager",
            resource="secret",
            resource_name=f"{config.jwt_token_secret_name}-??????",  # the 6 random characters AWS appends
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    def smoke(self) -> pipelines.CodeBuildStep:
        return self._step("Smoke", SMOKE_OUTPUTS, [f"{IN_STAGE_COMMAND} {script(SMOKE)}"], install=())

    def load(self) -> pipelines.CodeBuildStep:
        command = load_test_command(self.config.load, self.stage.config.env_name)
        return self._step(
            "LoadTest", LOAD_OUTPUTS, [f"{IN_STAGE_COMMAND} {command}"], install=INSTALL_CHECK_TOOLS
        )

    def gameday(self) -> pipelines.CodeBuildStep:
        return self._step(
            "PoisonPillGameday",
            GAMEDAY_OUTPUTS,
            [f"{IN_STAGE_COMMAND} {GAMEDAY_COMMAND}"],
            install=INSTALL_CHECK_TOOLS,
            finally_commands=[f"{IN_STAGE_COMMAND} {RESET_FAILURE_MODE_COMMAND}"],
        )

    def _step(
        self,
        step_id: str,
        outputs: Sequence[names.Output],
        commands: Sequence[str],
        *,
        install: Sequence[str],
        finally_commands: Sequence[str] = (),
    ) -> pipelines.CodeBuildStep:
        stage_config = self.stage.config
        env = {STAGE_ROLE_ARN_ENV: self.role_arn, STAGE_REGION_ENV: stage_config.region}
        statements = [
            iam.PolicyStatement(
                sid="AssumeStageChecksRole", actions=["sts:AssumeRole"], resources=[self.role_arn]
            )
        ]
        api_key_secret = self.stage.api_key_secret_name
        if api_key_secret is not None:
            env[API_KEY_SECRET_ID_ENV] = api_key_secret
        if stage_config.auth_mode == "jwt":
            env[JWT_SECRET_ID_ENV] = self.config.jwt_token_secret_name
            statements.append(
                iam.PolicyStatement(
                    sid="ReadSmokeBearerToken",
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[self.jwt_secret_arn],
                )
            )
        partial = None
        if finally_commands:
            partial = codebuild.BuildSpec.from_object(
                {"phases": {"build": {"finally": list(finally_commands)}}}
            )
        return pipelines.CodeBuildStep(
            step_id,
            install_commands=list(install),
            commands=list(commands),
            env=env,
            env_from_cfn_outputs={output.value: self.stage.outputs[output] for output in outputs},
            role_policy_statements=statements,
            partial_build_spec=partial,
            timeout=Duration.minutes(self.config.step_timeout_minutes),
        )
