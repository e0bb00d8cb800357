"""The role the pipeline's post-deploy steps (smoke, load test, gameday) assume in the stage's account."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from app.constructs.nag import suppress
from functions.common import names


def gameday_role_name(stage_prefix: str) -> str:
    """Deterministic, so the pipeline can name the role before the stage is deployed."""
    return f"{stage_prefix}-pipeline-checks"


def operator_route_arns(*, region: str, account: str) -> list[str]:
    """execute-api:Invoke on the operator routes (names.ApiRoute.for_operators) of the stage's HTTP
    API, whatever its generated id and stage (API Gateway Developer Guide, "Control access for
    invoking an API": arn:aws:execute-api:region:account:api-id/stage/METHOD/path).

    The API id is left open rather than referenced: a reference would be an export of the API stack
    consumed only by this optional role, which locks the API stack once the role goes (see
    tests/infra/app/test_exports.py). The account and region hold one stage.
    """
    return [
        f"arn:aws:execute-api:{region}:{account}:*/*/{route.method}{route.path}"
        for route in names.ApiRoute
        if route.for_operators
    ]


@dataclass(frozen=True)
class CheckedResources:
    """What the checks read or feed, by the deterministic names the stage gives them.

    By name rather than by reference: this role exists only when the stage has a pipeline account, so
    a reference would be an export consumed by an optional resource, which CloudFormation refuses to
    delete while the role still imports it ("Export ... cannot be deleted as it is in use").
    """

    failure_mode_parameter: str
    queues: Sequence[str]
    audit_queue: str | None  # eventAudit only
    state_table: str
    alarm_topic: str
    alarm_inbox: str
    worker_log_group: str
    api_key_secret: str | None  # authMode apiKey only


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
        resources: CheckedResources,
        key: kms.IKey | None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        parameter_arn = stack.format_arn(
            service="ssm", resource="parameter", resource_name=resources.failure_mode_parameter.lstrip("/")
        )
        operator_routes = operator_route_arns(region=stack.region, account=stack.account)
        statements = [
            iam.PolicyStatement(
                sid="ReadFailureMode", actions=["ssm:GetParameter"], resources=[parameter_arn]
            ),
            iam.PolicyStatement(
                sid="ObserveAndFeedQueues",
                actions=["sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:SendMessage"],
                resources=[stack.format_arn(service="sqs", resource=queue) for queue in resources.queues],
            ),
            iam.PolicyStatement(
                sid="ReadState",
                actions=["dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:BatchGetItem"],
                resources=[
                    stack.format_arn(
                        service="dynamodb", resource="table", resource_name=resources.state_table
                    )
                ],
            ),
            # The drills find the alarm topic's SQS subscriber and read the notifications from it.
            iam.PolicyStatement(
                sid="FindAlarmSubscribers",
                actions=["sns:ListSubscriptionsByTopic"],
                resources=[stack.format_arn(service="sns", resource=resources.alarm_topic)],
            ),
            iam.PolicyStatement(
                sid="ReadAlarmNotifications",
                actions=["sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:DeleteMessage"],
                resources=[stack.format_arn(service="sqs", resource=resources.alarm_inbox)],
            ),
            iam.PolicyStatement(
                sid="WatchAlarms",
                actions=["cloudwatch:DescribeAlarms"],
                # Listing alarms (DescribeAlarms without AlarmNames, as `lab status` and the drills
                # do to find the alarms notifying the stage's topic) names no alarm, so it is
                # authorized against Resource "*" (the local engine evaluates it the same way).
                resources=["*"],
            ),
            # duplicate-submit and random-fail-p30 count the worker's duplicate lines for their own
            # keys (lab/gamedays/observe.py DuplicateDetections). FilterLogEvents is authorized on
            # the log group (Service Authorization Reference, Amazon CloudWatch Logs: resource type
            # log-group, arn:...:log-group:${LogGroupName}).
            iam.PolicyStatement(
                sid="ReadWorkerLog",
                actions=["logs:FilterLogEvents"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name=f"{resources.worker_log_group}:*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            ),
            # The smoke test previews the DLQ and the gameday redrives it: the operator routes,
            # which take IAM authorization in every authMode.
            iam.PolicyStatement(
                sid="OperateRedrive", actions=["execute-api:Invoke"], resources=operator_routes
            ),
        ]
        if resources.audit_queue is not None:
            statements.append(
                iam.PolicyStatement(
                    sid="CountEvents",
                    actions=["sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:DeleteMessage"],
                    resources=[stack.format_arn(service="sqs", resource=resources.audit_queue)],
                )
            )
        # Prod refuses injection: without failureInjectionEnabled the role cannot flip the switch.
        if may_inject_failures:
            statements.append(
                iam.PolicyStatement(
                    sid="InjectFailureModes", actions=["ssm:PutParameter"], resources=[parameter_arn]
                )
            )
        if resources.api_key_secret is not None:
            statements.append(
                iam.PolicyStatement(
                    sid="CallTheApi",
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[
                        stack.format_arn(
                            service="secretsmanager",
                            resource="secret",
                            # Secrets Manager appends 6 random characters to a secret's name in its ARN.
                            resource_name=f"{resources.api_key_secret}-??????",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    ],
                )
            )
        if key is not None:
            # The key is referenced: every function of the stage uses it too, so its export never
            # depends on this role alone.
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
        suppress(
            self.role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:{stack.region}:{stack.account}:"
            f"log-group:{resources.worker_log_group}:*]",
            "one log group, the worker's: the trailing :* is how a log group's ARN is written (CDK's "
            "LogGroup.logGroupArn), not a wildcard over groups",
        )
        for arn in operator_routes:
            suppress(
                self.role,
                f"AwsSolutions-IAM5[Resource::{arn}]",
                "the operator routes of the stage's HTTP API, whose id is generated: referencing it would "
                "lock the API stack's export to this optional role; the account and region hold one stage",
            )
