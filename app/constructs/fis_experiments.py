"""AWS Fault Injection Service drills on the worker: the Lambda extension wiring and the templates.

FIS Lambda actions run through the AWS-managed FIS extension: a layer on the target function, the
AWS_LAMBDA_EXEC_WRAPPER and AWS_FIS_CONFIGURATION_LOCATION variables, and an S3 prefix where the
experiment writes the fault configuration that the extension polls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_fis as fis
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from app.constructs.lambda_fn import LambdaFn
from app.constructs.nag import suppress
from functions.common import names

FIS_CONFIG_PREFIX = "FisConfigs/"
# Names fixed by the AWS FIS Lambda extension (not ours: see the FIS user guide, "Use the
# aws:lambda:function actions").
FIS_EXEC_WRAPPER = "/opt/aws-fis/bootstrap"
FIS_ENV_EXEC_WRAPPER = "AWS_LAMBDA_EXEC_WRAPPER"
FIS_ENV_CONFIGURATION_LOCATION = "AWS_FIS_CONFIGURATION_LOCATION"
ACTION_ADD_DELAY = "aws:lambda:invocation-add-delay"
ACTION_ERROR = "aws:lambda:invocation-error"
FIS_MAX_STARTUP_DELAY_MS = 900_000
RANDOM_FAIL_PERCENTAGE = 30
# Past the worker timeout by this much, so every delayed invocation is killed by the timeout.
DELAY_BEYOND_TIMEOUT_SECONDS = 5


def configuration_bucket_name(*, stage_prefix: str, account: str, region: str) -> str:
    # A concrete name (account and region keep it globally unique) lets the observability stack
    # grant on it without a cross-stack export, and keeps the cdk-nag finding id a plain string.
    return f"{stage_prefix}-fis-config-{account}-{region}"


def configuration_objects_arn(bucket_name: str) -> str:
    # The lab targets the commercial partition (as does the public Powertools layer ARN).
    return f"arn:aws:s3:::{bucket_name}/{FIS_CONFIG_PREFIX}*"


def wildcard_finding(bucket_name: str) -> str:
    """The cdk-nag finding id of a statement on every object under the FIS prefix of the bucket."""
    return f"AwsSolutions-IAM5[Resource::{configuration_objects_arn(bucket_name)}]"


def extension_layer_parameter(architecture: str) -> str:
    """The public SSM parameter that holds the FIS extension layer ARN of this region."""
    return f"/aws/service/fis/lambda-extension/AWS-FIS-extension-{architecture}/1.x.x"


class FisLambdaTarget(Construct):
    """The configuration bucket and the extension layer/variables a FIS-targeted function needs."""

    def __init__(self, scope: Construct, construct_id: str, *, bucket_name: str, architecture: str) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "ConfigBucket",
            bucket_name=bucket_name,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            versioned=False,
            # Fault configurations are only meaningful while an experiment runs.
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(1))],
            removal_policy=RemovalPolicy.DESTROY,
        )
        suppress(
            self.bucket,
            "AwsSolutions-S1",
            "holds only short-lived FIS fault configurations (1-day expiry); FIS experiments are audited "
            "by CloudTrail, so server access logs would add a second, empty log bucket",
        )
        self._bucket_name = bucket_name
        self.configuration_location = f"arn:aws:s3:::{bucket_name}/{FIS_CONFIG_PREFIX}"
        self.layer = lambda_.LayerVersion.from_layer_version_arn(
            self,
            "ExtensionLayer",
            # Resolved by CloudFormation at deploy time (an SSM parameter-typed stack parameter),
            # so synth makes no AWS call and each region gets its own layer ARN.
            ssm.StringParameter.value_for_string_parameter(self, extension_layer_parameter(architecture)),
        )

    @property
    def environment(self) -> dict[str, str]:
        return {
            FIS_ENV_EXEC_WRAPPER: FIS_EXEC_WRAPPER,
            FIS_ENV_CONFIGURATION_LOCATION: self.configuration_location,
        }

    def attach(self, target: LambdaFn) -> None:
        """Run `target` through the extension: its layer, its variables, and read access to the fault
        configuration (the extension runs with the function's role)."""
        target.function.add_layers(self.layer)
        for name, value in self.environment.items():
            target.function.add_environment(name, value)
        target.allow(["s3:GetObject"], [configuration_objects_arn(self._bucket_name)])
        target.allow(
            ["s3:ListBucket"],
            [f"arn:aws:s3:::{self._bucket_name}"],
            conditions={"StringLike": {"s3:prefix": [f"{FIS_CONFIG_PREFIX}*"]}},
        )
        suppress(
            target.role,
            wildcard_finding(self._bucket_name),
            "the FIS extension reads whichever fault configuration object FIS writes under the prefix",
        )


@dataclass(frozen=True)
class Experiment:
    slug: str
    description: str
    action_id: str
    parameters: dict[str, str]


def worker_experiments(*, duration_minutes: int, worker_timeout_seconds: int) -> list[Experiment]:
    """The slow-downstream and random-fail drills, expressed as FIS Lambda actions."""
    duration = f"PT{duration_minutes}M"
    delay_ms = min((worker_timeout_seconds + DELAY_BEYOND_TIMEOUT_SECONDS) * 1000, FIS_MAX_STARTUP_DELAY_MS)
    return [
        Experiment(
            slug=names.FisExperiment.SLOW_DOWNSTREAM.value,
            description=(
                f"Slow downstream: every worker invocation starts {delay_ms} ms late, beyond its "
                f"{worker_timeout_seconds} s timeout, so batches time out and messages reappear"
            ),
            action_id=ACTION_ADD_DELAY,
            parameters={
                "duration": duration,
                "invocationPercentage": "100",
                "startupDelayMilliseconds": str(delay_ms),
            },
        ),
        Experiment(
            slug=names.FisExperiment.RANDOM_FAIL_P30.value,
            description=(
                f"Random failures: {RANDOM_FAIL_PERCENTAGE}% of worker invocations fail before running, "
                "so SQS retries settle the batches"
            ),
            action_id=ACTION_ERROR,
            parameters={
                "duration": duration,
                "invocationPercentage": str(RANDOM_FAIL_PERCENTAGE),
                "preventExecution": "true",
            },
        ),
    ]


class FisExperiments(Construct):
    """The experiment templates, stopped by the stage's alarms, run by a least-privilege role.

    The target function comes by ARN (see lambda_fn.function_arn): the templates exist only with
    fisEnabled, so a reference would be an export of the functions stack consumed by optional
    resources alone, and turning FIS off would then fail on the export still in use.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage_prefix: str,
        bucket_name: str,
        duration_minutes: int,
        target_function_arn: str,
        target_timeout_seconds: int,
        stop_alarms: Sequence[cloudwatch.IAlarm],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.role = iam.Role(
            self,
            "Role",
            role_name=f"{stage_prefix}-fis-experiments",
            description=f"Runs the FIS drills of {stage_prefix} on the worker function",
            # Only this account's experiments may assume the role (AWS FIS User Guide, "IAM roles
            # for AWS FIS experiments": the trust policy's aws:SourceAccount and aws:SourceArn
            # conditions against the confused deputy).
            assumed_by=iam.ServicePrincipal(
                "fis.amazonaws.com",
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(
                            service="fis", resource="experiment", resource_name="*"
                        )
                    },
                },
            ),
            inline_policies={
                "LambdaFaults": iam.PolicyDocument(
                    statements=[
                        # FIS resolves the target function and reads its extension configuration.
                        iam.PolicyStatement(actions=["lambda:GetFunction"], resources=[target_function_arn]),
                        # FIS writes (and at the end removes) the fault configuration the extension polls.
                        iam.PolicyStatement(
                            actions=["s3:PutObject", "s3:DeleteObject"],
                            resources=[configuration_objects_arn(bucket_name)],
                        ),
                    ]
                )
            },
        )
        suppress(
            self.role,
            wildcard_finding(bucket_name),
            "FIS names the fault configuration object at run time; access is limited to the FIS prefix",
        )
        stop_conditions = [
            fis.CfnExperimentTemplate.ExperimentTemplateStopConditionProperty(
                source="aws:cloudwatch:alarm", value=alarm.alarm_arn
            )
            for alarm in stop_alarms
        ]
        self.templates: dict[str, fis.CfnExperimentTemplate] = {}
        experiments = worker_experiments(
            duration_minutes=duration_minutes, worker_timeout_seconds=target_timeout_seconds
        )
        for experiment in experiments:
            self.templates[experiment.slug] = fis.CfnExperimentTemplate(
                self,
                experiment.slug,
                description=experiment.description,
                role_arn=self.role.role_arn,
                stop_conditions=stop_conditions,
                targets={
                    "Worker": fis.CfnExperimentTemplate.ExperimentTemplateTargetProperty(
                        resource_type="aws:lambda:function",
                        resource_arns=[target_function_arn],
                        selection_mode="ALL",
                    )
                },
                actions={
                    "inject": fis.CfnExperimentTemplate.ExperimentTemplateActionProperty(
                        action_id=experiment.action_id,
                        description=experiment.description,
                        parameters=experiment.parameters,
                        targets={"Functions": "Worker"},
                    )
                },
                tags={
                    names.FIS_TEMPLATE_NAME_TAG: f"{stage_prefix}-{experiment.slug}",
                    "Stage": stage_prefix,
                },
            )
