"""The worker component on a bare Stack: its event source, its grants, and the FIS extension."""

from __future__ import annotations

from app.components.worker import WorkerFunction
from functions.common import names
from tests.infra.app.components.kit import Neighbours, neighbours
from tests.infra.bare_stack import FUNCTIONS, BareStack


def worker(bare: BareStack, around: Neighbours, *, fis_bucket: str | None = None) -> WorkerFunction:
    return WorkerFunction(
        bare.stack,
        "Worker",
        functions=FUNCTIONS,
        timeout_seconds=30,
        queue=around.queue,
        dlq=around.dlq,
        batch_size=25,
        max_batching_window_seconds=2,
        max_concurrency=5,
        reserved_concurrency=8,
        state_table=around.table,
        ttl_days=7,
        bus=around.bus,
        switch=around.switch,
        fis_configuration_bucket=fis_bucket,
    )


def test_the_worker_consumes_in_batches_and_reports_partial_failures(bare: BareStack) -> None:
    around = neighbours(bare)
    component = worker(bare, around)
    mapping = bare.props(component.event_source)
    assert bare.ref(mapping["EventSourceArn"]) == bare.arn(around.queue)
    assert (mapping["BatchSize"], mapping["MaximumBatchingWindowInSeconds"]) == (25, 2)
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 5}
    assert bare.props(component.function)["ReservedConcurrentExecutions"] == 8
    assert component.fis is None


def test_the_worker_updates_records_publishes_reads_the_switch_consumes_parks_conflicts(
    bare: BareStack,
) -> None:
    around = neighbours(bare, encrypted=True)
    component = worker(bare, around)
    assert around.key is not None
    key = bare.arn(around.key)
    assert bare.grants(component) == {
        (frozenset({"dynamodb:UpdateItem"}), frozenset({bare.arn(around.table)})),
        (frozenset({"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"}), frozenset({key})),
        (frozenset({"ssm:GetParameter"}), frozenset({around.parameter_arn(bare)})),
        (frozenset({"events:PutEvents"}), frozenset({bare.arn(around.bus)})),
        (
            frozenset({"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}),
            frozenset({bare.arn(around.queue)}),
        ),
        (frozenset({"kms:Decrypt"}), frozenset({key})),
        (frozenset({"sqs:SendMessage"}), frozenset({bare.arn(around.dlq)})),
        (frozenset({"kms:GenerateDataKey", "kms:Decrypt"}), frozenset({key})),
    }
    env = bare.props(component.function)["Environment"]["Variables"]
    assert bare.ref(env[names.EnvVar.TABLE_NAME.value]) == bare.logical_id(around.table)
    assert bare.ref(env[names.EnvVar.EVENT_BUS_NAME.value]) == bare.logical_id(around.bus)
    assert bare.ref(env[names.EnvVar.DLQ_URL.value]) == bare.logical_id(around.dlq)


def test_with_a_fis_bucket_the_worker_carries_the_extension(bare: BareStack) -> None:
    component = worker(bare, neighbours(bare), fis_bucket="ingestion-test-fis-config-123456789012-eu-west-1")
    assert component.fis is not None
    assert len(bare.props(component.function)["Layers"]) == 2
    assert (
        bare.props(component.fis.bucket)["BucketName"] == "ingestion-test-fis-config-123456789012-eu-west-1"
    )
