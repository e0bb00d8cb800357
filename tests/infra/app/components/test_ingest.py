"""The ingest component on a bare Stack: what it may call, with which keys, and its environment."""

from __future__ import annotations

from app.components.ingest import IngestFunction
from functions.common import names
from tests.infra.app.components.kit import neighbours
from tests.infra.bare_stack import FUNCTIONS, BareStack


def test_ingest_sends_to_the_queue_with_its_key_reads_the_switch_and_a_key_record(bare: BareStack) -> None:
    around = neighbours(bare, encrypted=True)
    ingest = IngestFunction(
        bare.stack, "Ingest", functions=FUNCTIONS, timeout_seconds=10, max_body_bytes=65_536,
        queue=around.queue, state_table=around.table, switch=around.switch,
    )  # fmt: skip
    assert around.key is not None
    assert bare.grants(ingest) == {
        (frozenset({"sqs:SendMessage"}), frozenset({bare.arn(around.queue)})),
        (frozenset({"kms:GenerateDataKey", "kms:Decrypt"}), frozenset({bare.arn(around.key)})),
        (frozenset({"ssm:GetParameter"}), frozenset({around.parameter_arn(bare)})),
        (frozenset({"dynamodb:GetItem"}), frozenset({bare.arn(around.table)})),
        (frozenset({"kms:Decrypt"}), frozenset({bare.arn(around.key)})),
    }
    props = bare.props(ingest.function)
    env = props["Environment"]["Variables"]
    assert bare.ref(env[names.EnvVar.QUEUE_URL.value]) == bare.logical_id(around.queue)
    assert bare.ref(env[names.EnvVar.TABLE_NAME.value]) == bare.logical_id(around.table)
    assert env[names.EnvVar.MAX_BODY_BYTES.value] == "65536"
    assert env[names.EnvVar.FAILURE_INJECTION_ENABLED.value] == "true"
    assert (props["FunctionName"], props["Handler"], props["Timeout"]) == (
        "ingestion-test-ingest",
        names.Handler.INGEST.value,
        10,
    )
