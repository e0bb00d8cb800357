"""Stage outputs: every names.Output the contract lists, keyed by its value, exposed by the stage."""

from __future__ import annotations

from functions.common import names
from tests.infra.synth import SynthesizedStage

# Outputs of the optional parts: a stage without them has no such output (stage_client says which
# stage key brings it back).
EVENT_AUDIT_OUTPUTS = {names.Output.EVENT_AUDIT_QUEUE_URL}
SUCCESS_TOPIC_OUTPUTS = {names.Output.SUCCESS_TOPIC_ARN}


def test_stage_exposes_every_output_keyed_by_name(any_stage: SynthesizedStage) -> None:
    expected = set(names.Output) - (set() if any_stage.config.event_audit else EVENT_AUDIT_OUTPUTS)
    expected -= set() if any_stage.config.success_topic else SUCCESS_TOPIC_OUTPUTS
    assert set(any_stage.stage.outputs) == expected
    declared = {key for template in any_stage.raw.values() for key in template.get("Outputs", {})}
    assert {output for output in names.Output if output.value in declared} == expected


def test_prod_has_no_event_audit_output_and_dev_has(prod: SynthesizedStage, dev: SynthesizedStage) -> None:
    assert names.Output.EVENT_AUDIT_QUEUE_URL not in prod.stage.outputs
    assert names.Output.EVENT_AUDIT_QUEUE_URL in dev.stage.outputs


def test_prod_has_no_success_topic_and_keeps_the_failure_topic(
    prod: SynthesizedStage, dev: SynthesizedStage
) -> None:
    """docs/performance.md#cost: prod's success topic had no subscriber and cost a publish per event."""
    assert names.Output.SUCCESS_TOPIC_ARN not in prod.stage.outputs
    assert names.Output.FAILURE_TOPIC_ARN in prod.stage.outputs
    assert {names.Output.SUCCESS_TOPIC_ARN, names.Output.FAILURE_TOPIC_ARN} <= set(dev.stage.outputs)
    topics = [
        resource["Properties"]["TopicName"]
        for template in prod.raw.values()
        for resource in template.get("Resources", {}).values()
        if resource["Type"] == "AWS::SNS::Topic" and isinstance(resource["Properties"].get("TopicName"), str)
    ]
    assert "ingestion-prod-failure" in topics
    assert "ingestion-prod-success" not in topics


def test_outputs_point_at_the_right_resources(dev: SynthesizedStage) -> None:
    state, compute, api = dev.stage.state, dev.stage.compute, dev.stage.api
    outputs = {
        key: value["Value"]
        for template in dev.raw.values()
        for key, value in template.get("Outputs", {}).items()
    }
    assert dev.ref(outputs[names.Output.QUEUE_URL.value]) == dev.logical_id(state.queue)
    assert dev.ref(outputs[names.Output.DLQ_URL.value]) == dev.logical_id(state.dlq)
    assert dev.ref(outputs[names.Output.QUARANTINE_QUEUE_URL.value]) == dev.logical_id(state.quarantine_queue)
    assert dev.ref(outputs[names.Output.TABLE_NAME.value]) == dev.logical_id(state.state_table)
    assert dev.ref(outputs[names.Output.API_URL.value]) == f"{dev.logical_id(api.api)}.ApiEndpoint"
    assert outputs[names.Output.AUTH_MODE.value] == "apiKey"
    assert dev.ref(outputs[names.Output.WORKER_FUNCTION_NAME.value]) == dev.logical_id(
        compute.worker.function
    )
    assert compute.events.audit_queue is not None
    assert dev.ref(outputs[names.Output.EVENT_AUDIT_QUEUE_URL.value]) == dev.logical_id(
        compute.events.audit_queue
    )


def test_stack_names_are_deterministic(any_stage: SynthesizedStage) -> None:
    stage = any_stage.stage
    prefix = any_stage.config.prefix
    assert [s.stack_name for s in (stage.state, stage.compute, stage.api, stage.observability)] == [
        f"{prefix}-state",
        f"{prefix}-functions",
        f"{prefix}-api",
        f"{prefix}-observability",
    ]
