"""The redrive component on a bare Stack: its store (jobs table, quarantine) and its function."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs

from app.components.redrive import RedriveFunction, RedriveStore
from functions.common import names
from tests.infra.app.components.kit import neighbours
from tests.infra.bare_stack import ACCOUNT, FUNCTIONS, REGION, BareStack


def test_the_store_holds_the_jobs_table_and_the_quarantine(bare: BareStack) -> None:
    store = RedriveStore(
        bare.stack, "Redrive", stage_prefix="ingestion-test", jobs_table_name="redrive_jobs-test",
        key=None, max_message_size_bytes=262_144, protect=True,
    )  # fmt: skip
    table = bare.props(store.jobs_table)
    assert table["TableName"] == "redrive_jobs-test"
    assert table["KeySchema"] == [{"AttributeName": names.REDRIVE_JOBS_PARTITION_KEY, "KeyType": "HASH"}]
    assert table["DeletionProtectionEnabled"] is True
    quarantine = bare.props(store.quarantine_queue)
    assert quarantine["QueueName"] == "ingestion-test-quarantine"
    assert quarantine["MessageRetentionPeriod"] == 14 * 86_400
    assert "RedrivePolicy" not in quarantine


def test_the_function_moves_from_the_dlq_records_jobs_and_retries_a_failed_job(bare: BareStack) -> None:
    around = neighbours(bare)
    store = RedriveStore(
        bare.stack, "Redrive", stage_prefix="ingestion-test", jobs_table_name="redrive_jobs-test",
        key=None, max_message_size_bytes=262_144, protect=False,
    )  # fmt: skip
    failures = sqs.Queue(bare.stack, "Failures", retention_period=Duration.days(14))
    redrive = RedriveFunction(
        bare.stack, "Fn", functions=FUNCTIONS, timeout_seconds=300, queue=around.queue, dlq=around.dlq,
        store=store, state_table=around.table, max_redrives_per_message=3, max_messages_per_second=50,
        ttl_days=7, failure_queue=failures,
    )  # fmt: skip
    assert bare.grants(redrive) == {
        (
            frozenset(
                {
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes",
                }
            ),
            frozenset({bare.arn(around.dlq)}),
        ),
        (
            frozenset({"sqs:SendMessage"}),
            frozenset({bare.arn(around.queue), bare.arn(store.quarantine_queue)}),
        ),
        (frozenset({"dynamodb:GetItem", "dynamodb:UpdateItem"}), frozenset({bare.arn(around.table)})),
        (
            frozenset({"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem"}),
            frozenset({bare.arn(store.jobs_table)}),
        ),
        (
            frozenset({"lambda:InvokeFunction"}),
            frozenset({f"arn:AWS::Partition:lambda:{REGION}:{ACCOUNT}:function:ingestion-test-redrive"}),
        ),
        # The on-failure destination (granted by CDK).
        (
            frozenset({"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}),
            frozenset({bare.arn(failures)}),
        ),
    }
    (invoke,) = bare.resources("AWS::Lambda::EventInvokeConfig").values()
    # Retries resume a job (one runner per job: the lease), so the asynchronous invoke retries.
    assert invoke["Properties"]["MaximumRetryAttempts"] == 2
    env = bare.props(redrive.function)["Environment"]["Variables"]
    assert env[names.EnvVar.MAX_REDRIVES_PER_MESSAGE.value] == "3"
    assert bare.ref(env[names.EnvVar.QUARANTINE_QUEUE_URL.value]) == bare.logical_id(store.quarantine_queue)
