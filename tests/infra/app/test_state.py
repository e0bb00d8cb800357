"""The stage's state: queues, tables, key and failure switch: redrive policy, visibility, retention,
encryption, TLS-only, TTL."""

from __future__ import annotations

from typing import Any

from constructs import IConstruct

from functions.common import names
from tests.infra.synth import SynthesizedStage


def _queue(stage: SynthesizedStage, construct: IConstruct) -> dict[str, Any]:
    return stage.raw["state"]["Resources"][stage.logical_id(construct)]["Properties"]


def test_main_queue_dead_letters_after_max_receive_count(any_stage: SynthesizedStage) -> None:
    state = any_stage.stage.state
    policy = _queue(any_stage, state.queue)["RedrivePolicy"]
    assert policy["maxReceiveCount"] == any_stage.config.max_receive_count
    assert any_stage.ref(policy["deadLetterTargetArn"]) == any_stage.arn(state.dlq)


def test_visibility_is_six_times_the_worker_timeout_plus_the_batching_window(
    any_stage: SynthesizedStage,
) -> None:
    """AWS Lambda Developer Guide, "Using Lambda with Amazon SQS": the source queue's visibility
    timeout is at least six times the function timeout (plus the event source's batching window)."""
    visibility = _queue(any_stage, any_stage.stage.state.queue)["VisibilityTimeout"]
    compute = any_stage.stage.compute
    worker = any_stage.raw["functions"]["Resources"][any_stage.logical_id(compute.worker.function)]
    mapping = any_stage.raw["functions"]["Resources"][any_stage.logical_id(compute.worker.event_source)]
    window = mapping["Properties"]["MaximumBatchingWindowInSeconds"]
    assert window > 0
    assert visibility >= 6 * worker["Properties"]["Timeout"] + window
    assert visibility == any_stage.config.visibility_timeout_seconds


def test_local_queue_dead_letters_a_poison_message_within_a_minute(local: SynthesizedStage) -> None:
    queue = _queue(local, local.stage.state.queue)
    assert queue["VisibilityTimeout"] == 6 * 3 + 2
    assert queue["VisibilityTimeout"] * queue["RedrivePolicy"]["maxReceiveCount"] <= 60


def test_dlq_keeps_messages_longer_than_the_main_queue(any_stage: SynthesizedStage) -> None:
    state = any_stage.stage.state
    main = _queue(any_stage, state.queue)["MessageRetentionPeriod"]
    dlq = _queue(any_stage, state.dlq)["MessageRetentionPeriod"]
    assert dlq > main
    assert (main, dlq) == (4 * 86_400, 14 * 86_400)


def test_message_size_is_explicit_on_every_ingestion_queue(any_stage: SynthesizedStage) -> None:
    state = any_stage.stage.state
    for queue in (state.queue, state.dlq, state.quarantine_queue):
        assert _queue(any_stage, queue)["MaximumMessageSize"] == any_stage.config.max_message_size_bytes


def test_queues_use_the_aws_managed_sqs_key_by_default(
    local: SynthesizedStage, dev: SynthesizedStage
) -> None:
    for stage in (local, dev):
        for queue in stage.resources("state", "AWS::SQS::Queue").values():
            assert queue["Properties"]["KmsMasterKeyId"] == "alias/aws/sqs"
        # Queues that AWS services write to cannot use alias/aws/sqs: SSE-SQS instead.
        for queue in stage.resources("functions", "AWS::SQS::Queue").values():
            assert queue["Properties"]["SqsManagedSseEnabled"] is True


def test_cmk_encrypts_queues_topics_and_tables_with_rotation_and_alias(prod: SynthesizedStage) -> None:
    key_id = prod.logical_id(prod.stage.state.key)  # type: ignore[arg-type]
    prod.templates["state"].has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    prod.templates["state"].has_resource_properties("AWS::KMS::Alias", {"AliasName": "alias/ingestion-prod"})
    for kind in ("state", "functions"):
        for queue in prod.resources(kind, "AWS::SQS::Queue").values():
            assert prod.ref(queue["Properties"]["KmsMasterKeyId"]) == f"{key_id}.Arn"
    for kind in ("functions", "observability"):
        for topic in prod.resources(kind, "AWS::SNS::Topic").values():
            assert prod.ref(topic["Properties"]["KmsMasterKeyId"]) == f"{key_id}.Arn"
    for table in prod.resources("state", "AWS::DynamoDB::Table").values():
        sse = table["Properties"]["SSESpecification"]
        assert sse["SSEEnabled"] is True
        assert sse["SSEType"] == "KMS"
        assert prod.ref(sse["KMSMasterKeyId"]) == f"{key_id}.Arn"


def test_every_queue_refuses_requests_without_tls(any_stage: SynthesizedStage) -> None:
    for kind in ("state", "functions"):
        queues = set(any_stage.resources(kind, "AWS::SQS::Queue"))
        protected = set()
        for policy in any_stage.resources(kind, "AWS::SQS::QueuePolicy").values():
            denies_plain_http = any(
                statement["Effect"] == "Deny"
                and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            )
            if denies_plain_http:
                protected |= {queue["Ref"] for queue in policy["Properties"]["Queues"]}
        assert queues <= protected, kind


def test_every_topic_refuses_publishers_without_tls(any_stage: SynthesizedStage) -> None:
    for kind in ("functions", "observability"):
        topics = set(any_stage.resources(kind, "AWS::SNS::Topic"))
        protected = set()
        for policy in any_stage.resources(kind, "AWS::SNS::TopicPolicy").values():
            statements = policy["Properties"]["PolicyDocument"]["Statement"]
            if any(
                s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
                for s in statements
            ):
                protected |= {topic["Ref"] for topic in policy["Properties"]["Topics"]}
        assert topics, kind
        assert topics <= protected, kind


def test_state_table_keys_ttl_recovery_and_billing(any_stage: SynthesizedStage) -> None:
    any_stage.templates["state"].has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "TableName": f"ingestion_state-{any_stage.config.env_name}",
            "KeySchema": [{"AttributeName": names.STATE_TABLE_PARTITION_KEY, "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": {"AttributeName": names.STATE_TABLE_TTL_ATTRIBUTE, "Enabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        },
    )
    any_stage.templates["state"].has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [{"AttributeName": names.REDRIVE_JOBS_PARTITION_KEY, "KeyType": "HASH"}],
            "TimeToLiveSpecification": {"AttributeName": names.REDRIVE_JOBS_TTL_ATTRIBUTE, "Enabled": True},
        },
    )


def test_deletion_protection_only_outside_local_and_dev(
    local: SynthesizedStage, dev: SynthesizedStage, prod: SynthesizedStage
) -> None:
    for stage, protected in ((local, False), (dev, False), (prod, True)):
        for logical_id, table in stage.resources("state", "AWS::DynamoDB::Table").items():
            assert table["Properties"].get("DeletionProtectionEnabled", False) is protected, logical_id
            assert table["DeletionPolicy"] == ("Retain" if protected else "Delete")


def test_failure_mode_parameter_defaults_to_none(any_stage: SynthesizedStage) -> None:
    any_stage.templates["state"].has_resource_properties(
        "AWS::SSM::Parameter",
        {"Name": names.FAILURE_MODE_PARAMETER, "Type": "String", "Value": names.FailureMode.NONE.value},
    )


def test_quarantine_queue_is_a_separate_encrypted_parking_queue(any_stage: SynthesizedStage) -> None:
    quarantine = _queue(any_stage, any_stage.stage.state.quarantine_queue)
    assert quarantine["QueueName"] == f"{any_stage.config.prefix}-quarantine"
    assert "RedrivePolicy" not in quarantine
    assert quarantine["MessageRetentionPeriod"] == 14 * 86_400


def test_the_stage_key_names_only_the_account_and_the_audited_deliveries(prod: SynthesizedStage) -> None:
    """Beyond the account, the key policy holds one statement per service that delivers into a
    resource the key encrypts, each checked in tests/infra/app/test_deliveries.py."""
    (key,) = prod.resources("state", "AWS::KMS::Key").values()
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    services = sorted(s["Principal"]["Service"] for s in statements if "Service" in s["Principal"])
    assert services == ["cloudwatch.amazonaws.com", "events.amazonaws.com", "sns.amazonaws.com"]
    (account,) = [s for s in statements if "AWS" in s["Principal"]]
    assert prod.ref(account["Principal"]["AWS"]) == f"arn:AWS::Partition:iam::{prod.config.account}:root"
