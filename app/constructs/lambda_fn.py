"""The one Lambda factory: function + its own log group + a role scoped to that log group + tracing,
and the grants a function's component gives it (a queue or a table together with its key)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from app.constructs.functions_code import REPO_ROOT, RUNTIME, functions_code
from app.constructs.nag import suppress
from functions.common import names

RUNTIME_REQUIREMENTS = REPO_ROOT / "requirements-runtime.txt"
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


def function_arn(scope: Construct, function_name: str) -> str:
    """A function's ARN from its deterministic name, in `scope`'s stack.

    What a grant uses where a reference cannot go: a reference inside the function's own role policy
    is a circular dependency, and one from another stack is an export that locks the function's stack
    while the consumer imports it (tests/infra/app/test_exports.py).
    """
    return Stack.of(scope).format_arn(
        service="lambda",
        resource="function",
        resource_name=function_name,
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


@dataclass(frozen=True)
class FunctionSettings:
    """What every function of a stage shares; the stage builds it once from its configuration."""

    prefix: str
    env_name: str
    architecture: str
    memory_mb: int
    log_level: str
    log_retention_days: int
    retain_logs: bool
    # True: the layer ARN of the Powertools release pinned in requirements-runtime.txt, resolved at
    # deploy time from its public SSM parameter. False (the local cloud, which has no public
    # parameters and ignores layers): the ARN built from powertools_layer_version.
    powertools_layer_from_ssm: bool
    powertools_layer_version: int
    # False: no X-Ray at all. Lambda's active tracing is off (no TracingConfig: Lambda's default,
    # PassThrough, traces only a request whose tracing header says sampled=1 (AWS Lambda API
    # Reference, TracingConfig), and nothing upstream samples) and the functions never load the
    # X-Ray SDK (functions.common.observability.traced).
    tracing: bool = True
    # Lambda's SystemLogLevel (JSON log format): WARN drops the START, END and REPORT lines.
    system_log_level: str = "INFO"

    @property
    def application_log_level(self) -> str:
        """Lambda's ApplicationLogLevel: never above INFO. Lambda gives a JSON line without a
        "level" key, such as a Powertools EMF metrics line, the level INFO (AWS Lambda Developer
        Guide, "Log-level filtering": "If the "level" value field is invalid or missing, Lambda will
        assign the log output the level INFO"), so a higher level would drop the metrics; DEBUG for
        a stage that logs DEBUG, since Powertools takes this level over POWERTOOLS_LOG_LEVEL
        (functions.common.observability.keep_configured_level)."""
        return "DEBUG" if self.log_level == "DEBUG" else "INFO"


@dataclass(frozen=True)
class QueueAccess:
    """What a function does with a queue: the SQS actions, and what it needs of the queue's key.

    Producers of an SSE-KMS queue need kms:GenerateDataKey and kms:Decrypt, consumers kms:Decrypt
    (Amazon SQS Developer Guide, "Key management": configuring KMS permissions for producers and
    consumers). Queues on the AWS-managed alias/aws/sqs key need no key grant.
    """

    actions: tuple[str, ...]
    key_actions: tuple[str, ...]


SEND = QueueAccess(("sqs:SendMessage",), ("kms:GenerateDataKey", "kms:Decrypt"))
# What the SQS event source mapping calls with the consuming function's role.
CONSUME = QueueAccess(("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"), ("kms:Decrypt",))
# A consumer that also hides a message longer while it decides where the message goes.
CONSUME_AND_HOLD = QueueAccess(
    ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"),
    ("kms:Decrypt",),
)
_TABLE_READS = frozenset({"dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:BatchGetItem"})


class LambdaFn(Construct):
    """A Lambda function built the same way every time.

    - an explicit log group with the configured retention (the function logs only there);
    - a role whose only built-in permission is writing to that log group (plus X-Ray);
    - JSON log format with the stage's application and system log levels (AWS Lambda Developer Guide,
      "Configuring advanced logging controls" / "Log-level filtering");
    - active tracing where the stage traces, the Powertools layer, the standard environment variables;
    - its component adds exactly the calls the function makes (`allow`, `grant_queue`, `grant_table`).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: FunctionSettings,
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
        self.function_name = f"{settings.prefix}-{name}"
        self.log_group_name = names.function_log_group(self.function_name)
        self.log_group = logs.LogGroup(
            self,
            "LogGroup",
            log_group_name=self.log_group_name,
            retention=retention(settings.log_retention_days),
            removal_policy=RemovalPolicy.RETAIN if settings.retain_logs else RemovalPolicy.DESTROY,
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
            names.EnvVar.POWERTOOLS_LOG_LEVEL.value: settings.log_level,
            names.EnvVar.ENV_NAME.value: settings.env_name,
            **({} if settings.tracing else {names.EnvVar.POWERTOOLS_TRACE_DISABLED.value: "true"}),
            **{key.value: value for key, value in (environment or {}).items()},
            **(extra_environment or {}),
        }
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=self.function_name,
            description=description,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64
            if settings.architecture == "arm64"
            else lambda_.Architecture.X86_64,
            handler=handler.value,
            code=functions_code(settings.architecture),
            layers=[self._powertools_layer(settings), *extra_layers],
            timeout=Duration.seconds(timeout_seconds),
            memory_size=settings.memory_mb,
            environment=env,
            role=self.role,
            log_group=self.log_group,
            # Powertools already writes JSON, which Lambda does not encode again (AWS Lambda
            # Developer Guide, "Configuring JSON and plain text log formats").
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel[settings.application_log_level],
            system_log_level_v2=lambda_.SystemLogLevel[settings.system_log_level],
            tracing=lambda_.Tracing.ACTIVE if settings.tracing else lambda_.Tracing.DISABLED,
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
        self._acknowledge(async_failure_queue, async_retry_attempts, tracing=settings.tracing)
        if async_failure_queue is not None and async_retry_attempts is None:
            # Lambda sends failed asynchronous events to the dead-letter queue with the function's
            # role; CDK grants sqs:SendMessage, the queue's key is ours to grant.
            self._grant_key(async_failure_queue.encryption_master_key, SEND.key_actions)

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

    def grant_queue(self, access: QueueAccess, *queues: sqs.IQueue) -> None:
        """The queue actions of `access` on these queues, and the key actions on their keys.

        By hand rather than CDK's queue.grant_*: those add sqs:GetQueueUrl/GetQueueAttributes and
        kms:ReEncrypt*/GenerateDataKey* wildcards that the functions never call.
        """
        self.allow(access.actions, [queue.queue_arn for queue in queues])
        for queue in queues:
            self._grant_key(queue.encryption_master_key, access.key_actions)

    def grant_table(self, actions: Sequence[str], table: dynamodb.ITable) -> None:
        """These item actions on the table, and its customer-managed key for them: DynamoDB uses the
        key on the caller's behalf, so the caller's role must allow it (Amazon DynamoDB Developer
        Guide, "Encryption at rest: how it works", customer managed keys)."""
        self.allow(actions, [table.table_arn])
        reads_only = set(actions) <= _TABLE_READS
        key_actions = (
            ("kms:Decrypt",) if reads_only else ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey")
        )
        self._grant_key(table.encryption_key, key_actions)

    def _grant_key(self, key: kms.IKey | None, actions: Sequence[str]) -> None:
        if key is not None:
            self.allow(actions, [key.key_arn])

    def _powertools_layer(self, settings: FunctionSettings) -> lambda_.ILayerVersion:
        stack = Stack.of(self)
        return lambda_.LayerVersion.from_layer_version_arn(
            self,
            "PowertoolsLayer",
            ssm.StringParameter.value_for_string_parameter(
                stack, powertools_layer_parameter(settings.architecture)
            )
            if settings.powertools_layer_from_ssm
            else powertools_layer_arn(
                region=stack.region,
                architecture=settings.architecture,
                version=settings.powertools_layer_version,
            ),
        )

    def _acknowledge(
        self, async_failure_queue: sqs.IQueue | None, async_retry_attempts: int | None, *, tracing: bool
    ) -> None:
        if tracing:
            suppress(
                self.role,
                "AwsSolutions-IAM5[Resource::*]",
                "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions "
                "(Resource *)",
            )
        else:
            suppress(
                self.function,
                "Serverless-LambdaTracing",
                "tracingEnabled false: X-Ray at default sampling costs more per event than the stage's "
                "cost goal leaves (docs/performance.md#cost); set tracingEnabled true to trace",
            )
        latest_reason = (
            f"pinned to {RUNTIME.name}: the public Powertools v3 layer (the release pinned in "
            "requirements-runtime.txt) is built per Python minor version; move both together"
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
