"""The pipeline's checks role on a bare Stack: its name, its trust, and what it may do."""

from __future__ import annotations

from aws_cdk import aws_kms as kms

from app.constructs.gameday_role import CheckedResources, GamedayRole, gameday_role_name
from tests.infra.bare_stack import ACCOUNT, REGION, BareStack

RESOURCES = CheckedResources(
    failure_mode_parameter="/ingestion/failure_mode",
    queues=["ingestion-test-events"],
    audit_queue="ingestion-test-event-audit",
    state_table="state-test",
    alarm_topic="ingestion-test-alarms",
    alarm_inbox="ingestion-test-alarm-inbox",
    worker_log_group="/aws/lambda/ingestion-test-worker",
    api_key_secret=None,
)


def role(bare: BareStack, *, may_inject_failures: bool, key: kms.IKey | None) -> GamedayRole:
    return GamedayRole(
        bare.stack,
        "Checks",
        stage_prefix="ingestion-test",
        pipeline_account="999999999999",
        may_inject_failures=may_inject_failures,
        resources=RESOURCES,
        key=key,
    )


def statements(bare: BareStack, checks: GamedayRole) -> dict[str, tuple[set[str], set[str]]]:
    (policy,) = bare.props(checks.role)["Policies"]
    found = {}
    for statement in policy["PolicyDocument"]["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        found[statement["Sid"]] = (set(actions), {bare.ref(r) for r in resources})
    return found


def actions(bare: BareStack, checks: GamedayRole) -> set[str]:
    return {action for found, _ in statements(bare, checks).values() for action in found}


def test_the_role_is_named_for_the_stage_and_trusted_by_the_pipeline_account(bare: BareStack) -> None:
    checks = role(bare, may_inject_failures=True, key=None)
    props = bare.props(checks.role)
    assert props["RoleName"] == gameday_role_name("ingestion-test") == "ingestion-test-pipeline-checks"
    (trust,) = props["AssumeRolePolicyDocument"]["Statement"]
    assert bare.ref(trust["Principal"]["AWS"]) == "arn:AWS::Partition:iam::999999999999:root"
    assert "ssm:PutParameter" in actions(bare, checks)
    assert not [a for a in actions(bare, checks) if a.startswith("kms:")]


def test_the_role_names_what_it_checks_by_arn_built_from_the_names(bare: BareStack) -> None:
    found = statements(bare, role(bare, may_inject_failures=True, key=None))
    prefix = f"arn:AWS::Partition:{{}}:{REGION}:{ACCOUNT}:"
    assert found["ReadFailureMode"][1] == {prefix.format("ssm") + "parameter/ingestion/failure_mode"}
    assert found["ObserveAndFeedQueues"][1] == {prefix.format("sqs") + "ingestion-test-events"}
    assert found["CountEvents"][1] == {prefix.format("sqs") + "ingestion-test-event-audit"}
    assert found["ReadState"][1] == {prefix.format("dynamodb") + "table/state-test"}
    # The drills find the alarm topic's SQS subscriber and read its notifications (AlarmInbox).
    assert found["FindAlarmSubscribers"] == (
        {"sns:ListSubscriptionsByTopic"},
        {prefix.format("sns") + "ingestion-test-alarms"},
    )
    assert found["ReadAlarmNotifications"] == (
        {"sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:DeleteMessage"},
        {prefix.format("sqs") + "ingestion-test-alarm-inbox"},
    )
    assert found["OperateRedrive"] == (
        {"execute-api:Invoke"},
        {
            f"arn:aws:execute-api:{REGION}:{ACCOUNT}:*/*/{route}"
            for route in (
                "GET/redrive/preview",
                "POST/redrive/start",
                "POST/redrive/cancel",
                "GET/redrive/status",
            )
        },
    )
    assert "CallTheApi" not in found  # no API key secret without authMode apiKey


def test_without_injection_the_role_cannot_flip_the_switch_and_it_may_use_the_key(bare: BareStack) -> None:
    checks = role(bare, may_inject_failures=False, key=kms.Key(bare.stack, "Key"))
    assert "ssm:PutParameter" not in actions(bare, checks)
    assert {"kms:Decrypt", "kms:GenerateDataKey"} <= actions(bare, checks)
