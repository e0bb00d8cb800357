"""The pipeline's gameday role: deterministic name, trusted by the pipeline account, exact permissions."""

from __future__ import annotations

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
    state, compute = dev.stage.state, dev.stage.compute
    parameter = dev.logical_id(state.failure_mode_parameter)
    parameter_arn = f"arn:AWS::Partition:ssm:{dev.config.region}:{dev.config.account}:parameter{parameter}"
    grants = dev.role_grants(_role(dev))
    assert grants == {
        (frozenset({"ssm:GetParameter"}), frozenset({parameter_arn})),
        (frozenset({"ssm:PutParameter"}), frozenset({parameter_arn})),
        (
            frozenset({"sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:SendMessage"}),
            frozenset({dev.arn(state.queue), dev.arn(state.dlq), dev.arn(state.quarantine_queue)}),
        ),
        (
            frozenset({"sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:DeleteMessage"}),
            frozenset({dev.arn(compute.events.audit_queue)}),
        ),
        (
            frozenset({"dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:BatchGetItem"}),
            frozenset({dev.arn(state.state_table)}),
        ),
        (
            frozenset({"cloudwatch:DescribeAlarms"}),
            frozenset({"*"}),
        ),
        (
            frozenset({"secretsmanager:GetSecretValue"}),
            frozenset({dev.logical_id(dev.stage.api.api_key_secret)}),  # type: ignore[arg-type]
        ),
    }


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
