"""The one Lambda factory: function + its own log group + a role scoped to that log group + tracing."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from app.config import StageConfig
from app.constructs.nag import suppress
from functions.common import names

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNTIME_REQUIREMENTS = REPO_ROOT / "requirements-runtime.txt"
FUNCTIONS_PACKAGE = "functions"
RUNTIME = lambda_.Runtime.PYTHON_3_13
_POWERTOOLS_LAYER_ACCOUNT = "017000801446"


_RETENTION: dict[int, logs.RetentionDays] = {
    days: getattr(logs.RetentionDays, member)
    for days, member in (
        (1, "ONE_DAY"), (3, "THREE_DAYS"), (5, "FIVE_DAYS"), (7, "ONE_WEEK"), (14, "TWO_WEEKS"),
        (30, "ONE_MONTH"), (60, "TWO_MONTHS"), (90, "THREE_MONTHS"), (120, "FOUR_MONTHS"),
        (150, "FIVE_MONTHS"), (180, "SIX_MONTHS"), (365, "ONE_YEAR"), (400, "THIRTEEN_MONTHS"),
        (545, "EIGHTEEN_MONTHS"), (731, "TWO_YEARS"), (1096, "THREE_YEARS"), (1827, "FIVE_YEARS"),
        (2192, "SIX_YEARS"), (2557, "SEVEN_YEARS"), (2922, "EIGHT_YEARS"), (3288, "NINE_YEARS"),
        (3653, "TEN_YEARS"),
    )
}  # fmt: skip


def retention(days: int) -> logs.RetentionDays:
    """The RetentionDays member for a number of days (config validates against LOG_RETENTION_DAYS)."""
    return _RETENTION[days]


@cache
def _asset_excludes() -> tuple[str, ...]:
    # The asset is the repository root minus everything but functions/, so the handler path in
    # Lambda (functions.<fn>.handler.lambda_handler) equals the import path in tests. Excluding the
    # other top-level entries by name keeps the fingerprint from walking .venv and node_modules.
    others = sorted(p.name for p in REPO_ROOT.iterdir() if p.name != FUNCTIONS_PACKAGE)
    return (*others, "**/__pycache__", "**/*.pyc", "**/.mypy_cache", "**/.pytest_cache")


def functions_code() -> lambda_.Code:
    """The code asset shared by every function: only the functions package."""
    return lambda_.Code.from_asset(str(REPO_ROOT), exclude=list(_asset_excludes()))


def powertools_layer_arn(*, region: str, architecture: str, version: int) -> str:
    """The public Powertools for AWS Lambda (Python) v3 layer for RUNTIME and the architecture."""
    python = RUNTIME.name.replace(".", "")  # python3.13 -> python313
    return (
        f"arn:aws:lambda:{region}:{_POWERTOOLS_LAYER_ACCOUNT}:layer:"
        f"AWSLambdaPowertoolsPythonV3-{python}-{architecture}:{version}"
    )


@cache
def powertools_package_version() -> str:
    """The aws-lambda-powertools version pinned in requirements-runtime.txt.

    That pin is the one definition of the Powertools version: tests and the local engine install
    it, and the deployed functions get the public layer published for that same release.
    """
    for line in RUNTIME_REQUIREMENTS.read_text().splitlines():
        match = re.fullmatch(r"aws-lambda-powertools==(\S+)", line.strip())
        if match:
            return match.group(1)
    raise ValueError(f"{RUNTIME_REQUIREMENTS.name} pins no aws-lambda-powertools==<version>")


def powertools_layer_parameter(architecture: str) -> str:
    """The public SSM parameter holding the layer ARN of the pinned Powertools release.

    Powertools publishes /aws/service/powertools/python/<arch>/<python>/<version> in every region,
    so the deployed layer matches requirements-runtime.txt without a hand-copied layer number.
    """
    return f"/aws/service/powertools/python/{architecture}/{RUNTIME.name}/{powertools_package_version()}"


class LambdaFn(Construct):
    """A Lambda function built the same way every time.

    - an explicit log group with the configured retention (the function logs only there);
    - a role whose only built-in permission is writing to that log group (plus X-Ray);
    - active tracing, the Powertools layer, the standard environment variables;
    - callers add exactly the calls the function makes with `allow(...)`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        name: str,
        handler: names.Handler,
        description: str,
        timeout_seconds: int,
        environment: Mapping[names.EnvVar, str] | None = None,
        extra_environment: Mapping[str, str] | None = None,
        reserved_concurrency: int | None = None,
        extra_layers: Sequence[lambda_.ILayerVersion] = (),
        async_retry_attempts: int | None = None,
        async_failure_queue: sqs.IQueue | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.function_name = f"{config.prefix}-{name}"
        self.log_group = logs.LogGroup(
            self,
            "LogGroup",
            log_group_name=f"/aws/lambda/{self.function_name}",
            retention=retention(config.log_retention_days),
            removal_policy=RemovalPolicy.RETAIN if config.deletion_protection else RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Execution role of {self.function_name}",
            inline_policies={
                "Logs": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(
                            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                            resources=[self.log_group.log_group_arn],
                        )
                    ]
                )
            },
        )
        env = {
            names.EnvVar.POWERTOOLS_SERVICE_NAME.value: names.SERVICE_NAME,
            names.EnvVar.POWERTOOLS_METRICS_NAMESPACE.value: names.METRICS_NAMESPACE,
            names.EnvVar.POWERTOOLS_LOG_LEVEL.value: config.log_level,
            names.EnvVar.ENV_NAME.value: config.env_name,
            **{key.value: value for key, value in (environment or {}).items()},
            **(extra_environment or {}),
        }
        powertools = lambda_.LayerVersion.from_layer_version_arn(
            self,
            "PowertoolsLayer",
            # On AWS the ARN is resolved at deploy time from the public parameter of the pinned
            # release; the local cloud has no public parameters (and ignores layers), so it takes
            # the ARN built from powertoolsLayerVersion.
            ssm.StringParameter.value_for_string_parameter(
                stack, powertools_layer_parameter(config.architecture)
            )
            if config.powertools_layer_from_ssm
            else powertools_layer_arn(
                region=stack.region, architecture=config.architecture, version=config.powertools_layer_version
            ),
        )
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=self.function_name,
            description=description,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64
            if config.architecture == "arm64"
            else lambda_.Architecture.X86_64,
            handler=handler.value,
            code=functions_code(),
            layers=[powertools, *extra_layers],
            timeout=Duration.seconds(timeout_seconds),
            memory_size=config.function_memory_mb,
            environment=env,
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            reserved_concurrent_executions=reserved_concurrency,
            retry_attempts=async_retry_attempts,
            # With an asynchronous invoke configuration (retry_attempts), failures go to its
            # on-failure destination (which also records the error); otherwise to a plain DLQ.
            on_failure=(
                destinations.SqsDestination(async_failure_queue)
                if async_failure_queue is not None and async_retry_attempts is not None
                else None
            ),
            dead_letter_queue=async_failure_queue if async_retry_attempts is None else None,
        )
        suppress(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions (Resource *)",
        )
        latest_reason = (
            f"pinned to {RUNTIME.name}: the public Powertools v3 layer (the release pinned in "
            "requirements-runtime.txt) is "
            "built per Python minor version; move both together"
        )
        suppress(self.function, "AwsSolutions-L1", latest_reason)
        suppress(self.function, "Serverless-LambdaLatestVersion", latest_reason)
        if async_failure_queue is None:
            suppress(
                self.function,
                "Serverless-LambdaDLQ",
                "invoked synchronously only (HTTP API, the SQS event source, the authorizer or an operator): "
                "the error returns to the caller, and failed SQS messages go to the queue's own DLQ",
            )
        elif async_retry_attempts is not None:
            suppress(
                self.function,
                "Serverless-LambdaDLQ",
                "asynchronous failures go to the on-failure destination queue, which supersedes a DLQ",
            )

    @property
    def arn(self) -> str:
        return self.function.function_arn

    def allow(
        self, actions: Sequence[str], resources: Sequence[str], conditions: Mapping[str, object] | None = None
    ) -> None:
        """Grant exactly these actions on exactly these resources to the function's role."""
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=list(actions),
                resources=list(resources),
                conditions=dict(conditions) if conditions else None,
            )
        )
