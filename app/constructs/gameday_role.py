"""The role the pipeline's post-deploy steps (smoke, load test, gameday) assume in the stage's account."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from app.constructs.nag import suppress


def gameday_role_name(stage_prefix: str) -> str:
    """Deterministic, so the pipeline can name the role before the stage is deployed."""
    return f"{stage_prefix}-pipeline-checks"


class GamedayRole(Construct):
    """Trusted by the pipeline account only; allowed exactly what the post-deploy checks call."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage_prefix: str,
        pipeline_account: str,
        may_inject_failures: bool,
        failure_mode_parameter: ssm.IStringParameter,
        queues: Sequence[sqs.IQueue],
        audit_queue: sqs.IQueue,
        state_table: dynamodb.ITable,
        api_key_secret: secretsmanager.ISecret | None,
        key: kms.IKey | None,
    ) -> None:
        super().__init__(scope, construct_id)
        statements = [
            iam.PolicyStatement(
                sid="ReadFailureMode",
                actions=["ssm:GetParameter"],
                resources=[failure_mode_parameter.parameter_arn],
            ),
            iam.PolicyStatement(
                sid="ObserveAndFeedQueues",
                actions=["sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:SendMessage"],
                resources=[queue.queue_arn for queue in queues],
            ),
            iam.PolicyStatement(
                sid="CountEvents",
                actions=["sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:DeleteMessage"],
                resources=[audit_queue.queue_arn],
            ),
            iam.PolicyStatement(
                sid="ReadState",
                actions=["dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:BatchGetItem"],
                resources=[state_table.table_arn],
            ),
            iam.PolicyStatement(
                sid="WatchAlarms",
                actions=["cloudwatch:DescribeAlarms"],
                # Listing alarms (DescribeAlarms without AlarmNames, as `lab status` and the drills
                # do to find the alarms notifying the stage's topic) names no alarm, so it is
                # authorized against Resource "*" (the local engine evaluates it the same way).
                resources=["*"],
            ),
        ]
        # Prod refuses injection: without failureInjectionEnabled the role cannot flip the switch.
        if may_inject_failures:
            statements.append(
                iam.PolicyStatement(
                    sid="InjectFailureModes",
                    actions=["ssm:PutParameter"],
                    resources=[failure_mode_parameter.parameter_arn],
                )
            )
        if api_key_secret is not None:
            statements.append(
                iam.PolicyStatement(
                    sid="CallTheApi",
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[api_key_secret.secret_arn],
                )
            )
        if key is not None:
            statements.append(
                iam.PolicyStatement(
                    sid="UseEncryptedQueues",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[key.key_arn],
                )
            )
        self.role = iam.Role(
            self,
            "Role",
            role_name=gameday_role_name(stage_prefix),
            description=f"Post-deploy smoke, load and gameday checks of {stage_prefix} (pipeline account)",
            assumed_by=iam.AccountPrincipal(pipeline_account),
            max_session_duration=Duration.hours(1),
            inline_policies={"PipelineChecks": iam.PolicyDocument(statements=statements)},
        )
        suppress(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "cloudwatch:DescribeAlarms is read-only; listing the stage's alarms (found by their SNS "
            "action) names no alarm, so it is authorized against Resource *",
        )
