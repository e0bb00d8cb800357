"""The pipeline's gameday role: deterministic name, trusted by the pipeline account, exact permissions."""

from __future__ import annotations

from typing import Any

from aws_cdk import App
from aws_cdk import aws_iam as iam

from app.config import load_stage_config
from app.constructs.gameday_role import gameday_role_name
from app.main import stage_context
from functions.common import names
from tests.infra.synth import PIPELINE_ACCOUNT, SynthesizedStage


def _role(stage: SynthesizedStage) -> iam.Role:
    return stage.stage.observability.gameday_role.role  # type: ignore[union-attr]


def test_role_name_is_deterministic_and_trusted_by_the_pipeline_account_only(
    any_stage: SynthesizedStage,
) -> None:
    props = any_stage.raw["observability"]["Resources"][any_stage.logical_id(_role(any_stage))]["Properties"]
    assert props["RoleName"] == f"ingestion-{any_stage.config.env_name}-pipeline-checks"
    assert props["RoleName"] == gameday_role_name(any_stage.config.prefix) == any_stage.stage.checks_role_name
    (trust,) = props["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Action"] == "sts:AssumeRole"
    assert any_stage.ref(trust["Principal"]["AWS"]) == f"arn:AWS::Partition:iam::{PIPELINE_ACCOUNT}:root"


def test_role_may_do_exactly_what_the_checks_need(dev: SynthesizedStage) -> None:
    """By name, not by reference (the role is optional: tests/infra/app/test_exports.py); the names are
    those the stage gives its resources."""
    config, state, compute = dev.config, dev.stage.state, dev.stage.compute

    def arn(service: str, resource: str) -> str:
        return f"arn:AWS::Partition:{service}:{config.region}:{config.account}:{resource}"

    def physical_name(stack: str, construct: Any, prop: str) -> str:
        return str(dev.raw[stack]["Resources"][dev.logical_id(construct)]["Properties"][prop])

    queues = {
        arn("sqs", physical_name("state", queue, "QueueName"))
        for queue in (state.queue, state.dlq, state.quarantine_queue)
    }
    parameter = arn("ssm", f"parameter{physical_name('state', state.failure_mode_parameter, 'Name')}")
    table = arn("dynamodb", f"table/{physical_name('state', state.state_table, 'TableName')}")
    audit = arn("sqs", physical_name("functions", compute.events.audit_queue, "QueueName"))
    observability = dev.stage.observability
    alarm_topic = arn("sns", physical_name("observability", observability.alarm_topic, "TopicName"))
    (inbox,) = [q for q in observability.node.find_all() if q.node.id == "Inbox"]
    alarm_inbox = arn("sqs", physical_name("observability", inbox, "QueueName"))
    secret = arn(
        "secretsmanager", f"secret:{physical_name('api', dev.stage.api.api_key_secret, 'Name')}-??????"
    )
    worker_log = arn(
        "logs", f"log-group:{physical_name('functions', compute.worker.log_group, 'LogGroupName')}:*"
    )
    operator_routes = {
        f"arn:aws:execute-api:{config.region}:{config.account}:*/*/{route}"
        for route in (
            "GET/redrive/preview",
            "POST/redrive/start",
            "POST/redrive/cancel",
            "GET/redrive/status",
        )
    }
    assert dev.role_grants(_role(dev)) == {
        (frozenset({"ssm:GetParameter"}), frozenset({parameter})),
        (frozenset({"ssm:PutParameter"}), frozenset({parameter})),
        (frozenset({"sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:SendMessage"}), frozenset(queues)),
        (
            frozenset({"sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:DeleteMessage"}),
            frozenset({audit}),
        ),
        (
            frozenset({"dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:BatchGetItem"}),
            frozenset({table}),
        ),
        (frozenset({"sns:ListSubscriptionsByTopic"}), frozenset({alarm_topic})),
        (
            frozenset({"sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:DeleteMessage"}),
            frozenset({alarm_inbox}),
        ),
        (frozenset({"cloudwatch:DescribeAlarms"}), frozenset({"*"})),
        (frozenset({"execute-api:Invoke"}), frozenset(operator_routes)),
        (frozenset({"secretsmanager:GetSecretValue"}), frozenset({secret})),
        (frozenset({"logs:FilterLogEvents"}), frozenset({worker_log})),
    }


def test_the_role_may_invoke_the_operator_routes_and_no_producer_route(any_stage: SynthesizedStage) -> None:
    """The checks operate the DLQ (smoke previews it, the gameday redrives it) through the routes
    that take IAM authorization, and POST /events with the producer's credential, never by IAM."""
    invokable = {
        resource
        for actions, resources in any_stage.role_grants(_role(any_stage))
        if "execute-api:Invoke" in actions
        for resource in resources
    }
    routes = {resource.split(":*/*/", 1)[1] for resource in invokable}
    expected = {f"{r.method}{r.path}" for r in names.ApiRoute if r.for_operators}
    assert routes == expected
    assert f"{names.ApiRoute.EVENTS.method}{names.ApiRoute.EVENTS.path}" not in routes


def test_prod_role_cannot_inject_failures_and_needs_no_api_key(prod: SynthesizedStage) -> None:
    actions = {action for grant_actions, _ in prod.role_grants(_role(prod)) for action in grant_actions}
    assert "ssm:PutParameter" not in actions
    assert "ssm:GetParameter" in actions
    assert "secretsmanager:GetSecretValue" not in actions
    assert {"kms:Decrypt", "kms:GenerateDataKey"} <= actions  # the prod queues use the stage CMK


def test_gameday_role_arn_is_a_stage_output(any_stage: SynthesizedStage) -> None:
    output = any_stage.raw["observability"]["Outputs"][names.Output.GAMEDAY_ROLE_ARN.value]
    assert any_stage.ref(output["Value"]) == any_stage.arn(_role(any_stage))


def test_no_gameday_role_without_a_pipeline_account() -> None:
    config = load_stage_config(stage_context(App()), "dev")
    assert config.pipeline_account is None


COUNT_EVENTS = frozenset({"sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:DeleteMessage"})


def test_without_the_event_audit_the_role_counts_no_events(
    prod: SynthesizedStage, dev: SynthesizedStage
) -> None:
    """eventAudit false (prod): no audit queue, so no statement names one."""
    prod_grants = prod.role_grants(_role(prod))
    assert prod_grants
    assert COUNT_EVENTS not in {actions for actions, _ in prod_grants}
    assert not [r for _, resources in prod_grants for r in resources if "event-audit" in r]
    assert COUNT_EVENTS in {actions for actions, _ in dev.role_grants(_role(dev))}
