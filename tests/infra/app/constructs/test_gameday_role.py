"""The pipeline's checks role on a bare Stack: its name, its trust, and what it may do."""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm

from app.constructs.gameday_role import GamedayRole, gameday_role_name
from tests.infra.bare_stack import BareStack


def role(bare: BareStack, *, may_inject_failures: bool, key: kms.IKey | None) -> GamedayRole:
    return GamedayRole(
        bare.stack,
        "Checks",
        stage_prefix="ingestion-test",
        pipeline_account="999999999999",
        may_inject_failures=may_inject_failures,
        failure_mode_parameter=ssm.StringParameter(bare.stack, "P", string_value="none"),
        queues=[sqs.Queue(bare.stack, "Q")],
        audit_queue=sqs.Queue(bare.stack, "Audit"),
        state_table=dynamodb.Table(
            bare.stack, "T", partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
        ),
        api_key_secret=None,
        key=key,
    )


def actions(bare: BareStack, checks: GamedayRole) -> set[str]:
    (policy,) = bare.props(checks.role)["Policies"]
    return {
        action
        for statement in policy["PolicyDocument"]["Statement"]
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    }


def test_the_role_is_named_for_the_stage_and_trusted_by_the_pipeline_account(bare: BareStack) -> None:
    checks = role(bare, may_inject_failures=True, key=None)
    props = bare.props(checks.role)
    assert props["RoleName"] == gameday_role_name("ingestion-test") == "ingestion-test-pipeline-checks"
    (trust,) = props["AssumeRolePolicyDocument"]["Statement"]
    assert bare.ref(trust["Principal"]["AWS"]) == "arn:AWS::Partition:iam::999999999999:root"
    assert "ssm:PutParameter" in actions(bare, checks)
    assert not [a for a in actions(bare, checks) if a.startswith("kms:")]


def test_without_injection_the_role_cannot_flip_the_switch_and_it_may_use_the_key(bare: BareStack) -> None:
    checks = role(bare, may_inject_failures=False, key=kms.Key(bare.stack, "Key"))
    assert "ssm:PutParameter" not in actions(bare, checks)
    assert {"kms:Decrypt", "kms:GenerateDataKey"} <= actions(bare, checks)
