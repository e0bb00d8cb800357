"""The lab's AWS-side logic against moto: failure mode, verify + event audit counting, stage status."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import boto3
import pytest

from functions.common.names import (
    EVENT_SOURCE,
    FAILURE_MODE_PARAMETER,
    STATE_TABLE_PARTITION_KEY,
    DetailType,
    Output,
    RecordStatus,
)
from stage_client import audit, failure_mode, status, verify
from stage_client.failure_mode import FailureModeError, StageGuardrails
from stage_client.target import Target

REGION = "us-east-1"


def put_record(stage: Any, key: str, status_value: str, **extra: Any) -> None:
    item = {STATE_TABLE_PARTITION_KEY: {"S": key}, "status": {"S": status_value}}
    for name, value in extra.items():
        item[name] = {"N": str(value)} if isinstance(value, int | float) else {"S": str(value)}
    stage.dynamodb.put_item(TableName=stage.table_name, Item=item)


def audit_event(
    key: str,
    detail_type: DetailType = DetailType.SUCCESS,
    *,
    envelope: bool = False,
    event_id: str | None = None,
    envelope_id: str | None = None,
) -> str:
    """An event as the audit queue gets it; its detail eventId defaults to one per key and type (so
    sending the same call twice is a duplicate delivery of one outcome), its envelope id to a new
    one per call, as every PutEvents makes."""
    event = {
        "id": envelope_id or str(uuid.uuid4()),
        "source": EVENT_SOURCE,
        "detail-type": detail_type.value,
        "detail": {"idempotencyKey": key, "eventId": event_id or f"{detail_type.value}-{key}"},
    }
    if envelope:
        return json.dumps({"Type": "Notification", "Message": json.dumps(event)})
    return json.dumps(event)


# --- failure mode -----------------------------------------------------------------------------
def test_set_writes_json_with_expiry_and_reads_back_active(lab_target: Target, stage: Any) -> None:
    before = time.time()
    failure_mode.set_failure_mode(lab_target, "poison_payload", ttl_seconds=120, set_by="test")
    stored = json.loads(stage.ssm.get_parameter(Name=FAILURE_MODE_PARAMETER)["Parameter"]["Value"])
    assert stored["mode"] == "poison_payload"
    assert stored["setBy"] == "test"
    assert before + 119 <= stored["expiresAt"] <= time.time() + 121
    state = failure_mode.read_failure_mode(lab_target, guardrails=StageGuardrails())
    assert (state.mode, state.effective, state.resolution) == ("poison_payload", "poison_payload", "active")
    assert "expires in" in state.describe()


def test_expired_mode_reads_as_none_without_changing_the_parameter(lab_target: Target, stage: Any) -> None:
    failure_mode.set_failure_mode(lab_target, "slow_downstream", ttl_seconds=10)
    state = failure_mode.read_failure_mode(lab_target, now=time.time() + 11, guardrails=StageGuardrails())
    assert (state.mode, state.effective, state.resolution) == ("slow_downstream", "none", "expired")


def test_plain_value_expires_at_last_modified_plus_max_ttl(lab_target: Target, stage: Any) -> None:
    stage.set_failure_mode("random_fail_p30")
    rails = StageGuardrails(max_ttl_seconds=60)
    assert failure_mode.read_failure_mode(lab_target, guardrails=rails).effective == "random_fail_p30"
    later = failure_mode.read_failure_mode(lab_target, now=time.time() + 61, guardrails=rails)
    assert later.effective == "none"


def test_unknown_value_and_disabled_injection_read_as_none(lab_target: Target, stage: Any) -> None:
    stage.set_failure_mode("melt_the_cpu")
    assert failure_mode.read_failure_mode(lab_target, guardrails=StageGuardrails()).resolution == "unknown"
    stage.set_failure_mode("poison_payload")
    disabled = failure_mode.read_failure_mode(lab_target, guardrails=StageGuardrails(injection_enabled=False))
    assert (disabled.effective, disabled.resolution) == ("none", "disabled")


@pytest.mark.parametrize(("mode", "ttl"), [("melt", 60), ("poison_payload", 0), ("poison_payload", 3601)])
def test_set_refuses_unknown_modes_and_bad_ttls(lab_target: Target, stage: Any, mode: str, ttl: int) -> None:
    with pytest.raises(FailureModeError):
        failure_mode.set_failure_mode(lab_target, mode, ttl_seconds=ttl)
    assert stage.ssm.get_parameter(Name=FAILURE_MODE_PARAMETER)["Parameter"]["Value"] == "none"


def test_reset_writes_none(lab_target: Target, stage: Any) -> None:
    failure_mode.set_failure_mode(lab_target, "duplicate_submit")
    failure_mode.reset_failure_mode(lab_target, set_by="test")
    assert failure_mode.read_failure_mode(lab_target, guardrails=StageGuardrails()).resolution == "none"
    assert "expiresAt" not in json.loads(
        stage.ssm.get_parameter(Name=FAILURE_MODE_PARAMETER)["Parameter"]["Value"]
    )


def test_guardrails_default_without_a_worker_output(lab_target: Target) -> None:
    assert failure_mode.stage_guardrails(lab_target) == StageGuardrails()


# --- verify ---------------------------------------------------------------------------------
def test_verify_passes_when_every_key_succeeded_once(lab_target: Target, stage: Any) -> None:
    keys = [f"key-{i:04d}" for i in range(250)]  # three BatchGetItem chunks
    for key in keys:
        put_record(stage, key, RecordStatus.SUCCEEDED.value)
    report = verify.verify_keys(lab_target, keys, timeout_s=5)
    assert report.ok
    assert (report.expected, report.succeeded, report.missing, report.not_succeeded) == (250, 250, [], {})
    assert report.success_events is None


def test_verify_reports_missing_and_not_succeeded_after_the_timeout(lab_target: Target, stage: Any) -> None:
    put_record(stage, "done", RecordStatus.SUCCEEDED.value)
    put_record(stage, "stuck", RecordStatus.FAILED.value, errorType="TransientDownstreamError")
    progress: list[str] = []
    started = time.monotonic()
    report = verify.verify_keys(
        lab_target, ["done", "stuck", "never"], timeout_s=1.5, on_progress=progress.append
    )
    assert 1.5 <= time.monotonic() - started < 10
    assert not report.ok
    assert report.missing == ["never"]
    assert report.not_succeeded == {"stuck": "FAILED"}
    assert report.succeeded == 1
    assert len(progress) >= 2
    assert "1/3 SUCCEEDED" in progress[0]
    assert report.summary().startswith("FAIL")


def test_verify_counts_distinct_success_events_and_flags_keys_with_several(
    lab_target: Target, stage: Any
) -> None:
    keys = ["a1", "b2", "c3"]
    for key in keys:
        put_record(stage, key, RecordStatus.SUCCEEDED.value)
    bodies = [audit_event("a1"), audit_event("b2", envelope=True), audit_event("c3")]
    bodies += [audit_event("c3", event_id="a second outcome of c3")]
    bodies += [audit_event("a1", DetailType.FAILURE), audit_event("someone-else")]
    for body in bodies:
        stage.sqs.send_message(QueueUrl=stage.event_capture_url, MessageBody=body)
    report = verify.verify_keys(lab_target, keys, timeout_s=5, count_events=True)
    assert report.success_events == 4
    assert report.duplicate_events == {"c3": 2}
    assert report.duplicate_deliveries == 0
    assert not report.ok
    # Our events are consumed; another verifier's event is left in the queue.
    assert stage.depth(stage.event_capture_url) == 1


def test_verify_counts_a_duplicate_delivery_once_and_reports_it(lab_target: Target, stage: Any) -> None:
    """At-least-once delivery: the same event (same id) delivered twice is one event, a figure."""
    for key in ("d1", "d2"):
        put_record(stage, key, RecordStatus.SUCCEEDED.value)
    for body in (audit_event("d1"), audit_event("d1"), audit_event("d1", envelope=True), audit_event("d2")):
        stage.sqs.send_message(QueueUrl=stage.event_capture_url, MessageBody=body)
    report = verify.verify_keys(lab_target, ["d1", "d2"], timeout_s=5, count_events=True)
    assert report.ok, report.summary()
    assert (report.success_events, report.duplicate_events, report.duplicate_deliveries) == (2, {}, 2)
    assert "2 duplicate deliveries (counted once)" in report.summary()


def test_verify_with_exactly_one_event_per_key_passes(lab_target: Target, stage: Any) -> None:
    for key in ("x1", "x2"):
        put_record(stage, key, RecordStatus.SUCCEEDED.value)
        stage.sqs.send_message(QueueUrl=stage.event_capture_url, MessageBody=audit_event(key))
    report = verify.verify_keys(lab_target, ["x1", "x2", "x1"], timeout_s=5, count_events=True)
    assert report.ok
    assert (report.expected, report.success_events) == (2, 2)


def test_parse_event_ignores_foreign_and_malformed_messages() -> None:
    assert audit.parse_event(audit_event("k", event_id="e-1")) == audit.AuditEvent(
        DetailType.SUCCESS.value, "k", "e-1"
    )
    republished = json.loads(audit_event("k", event_id="e-1"))
    assert audit.parse_event(json.dumps(republished | {"id": "another-envelope"})) == audit.AuditEvent(
        DetailType.SUCCESS.value, "k", "e-1"
    )
    envelope_only = {
        "id": "envelope-1",
        "source": EVENT_SOURCE,
        "detail-type": "IngestionSuccess",
        "detail": {"idempotencyKey": "k"},
    }
    assert audit.parse_event(json.dumps(envelope_only)) == audit.AuditEvent(
        DetailType.SUCCESS.value, "k", "envelope-1"
    )
    without_id = {
        "source": EVENT_SOURCE,
        "detail-type": "IngestionSuccess",
        "detail": {"idempotencyKey": "k"},
    }
    assert audit.parse_event(json.dumps(without_id)) is None
    assert audit.parse_event("not json") is None
    assert audit.parse_event(json.dumps({"source": "other", "detail-type": "X", "detail": {}})) is None
    assert audit.parse_event(json.dumps({"Type": "Notification"})) is None


# --- status ---------------------------------------------------------------------------------
def test_stage_status_counts_queues_records_and_only_the_stages_alarms(
    lab_target: Target, stage: Any
) -> None:
    for index in range(3):
        stage.sqs.send_message(QueueUrl=stage.dlq_url, MessageBody=f"m{index}")
    put_record(stage, "s1", RecordStatus.SUCCEEDED.value)
    put_record(stage, "s2", RecordStatus.SUCCEEDED.value)
    put_record(stage, "f1", RecordStatus.FAILED.value)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    topic = lab_target.output(Output.ALARM_TOPIC_ARN)
    common: dict[str, Any] = {
        "Namespace": "AWS/SQS",
        "Statistic": "Maximum",
        "Period": 10,
        "EvaluationPeriods": 1,
        "Threshold": 0,
        "ComparisonOperator": "GreaterThanThreshold",
    }
    cloudwatch.put_metric_alarm(
        AlarmName="stage-dlq-depth",
        MetricName="ApproximateNumberOfMessagesVisible",
        Dimensions=[{"Name": "QueueName", "Value": "ingest-dlq"}],
        AlarmActions=[topic],
        **common,
    )
    cloudwatch.put_metric_alarm(
        AlarmName="other-stage-alarm",
        MetricName="ApproximateNumberOfMessagesVisible",
        Dimensions=[{"Name": "QueueName", "Value": "ingest-dlq"}],
        AlarmActions=["arn:aws:sns:us-east-1:123456789012:someone-else"],
        **common,
    )
    snapshot = status.stage_status(lab_target)
    assert snapshot.queues["dlq"].visible == 3
    assert snapshot.queues["main"].visible == 0
    assert set(snapshot.queues) == {"main", "dlq", "quarantine", "audit"}
    assert snapshot.records_by_status == {"SUCCEEDED": 2, "FAILED": 1}
    assert [a.name for a in snapshot.alarms] == ["stage-dlq-depth"]
    assert [a.name for a in status.queue_alarms(snapshot.alarms, "ingest-dlq")] == ["stage-dlq-depth"]
    assert status.queue_alarms(snapshot.alarms, "ingest-main") == []
    assert json.dumps(snapshot.to_dict(), default=str)


def test_records_by_status_marks_a_capped_scan_partial(lab_target: Target, stage: Any) -> None:
    for index in range(5):
        put_record(stage, f"k{index}", RecordStatus.SUCCEEDED.value)
    counts, partial = status.records_by_status(lab_target, max_items=5)
    assert partial
    assert counts == {"SUCCEEDED": 5}


def test_verify_keeps_events_a_caller_already_consumed(lab_target: Target, stage: Any) -> None:
    """A drill that drained the audit queue on the way passes its counts on: nothing is lost."""
    for key in ("e1", "e2"):
        put_record(stage, key, RecordStatus.SUCCEEDED.value)
        stage.sqs.send_message(QueueUrl=stage.event_capture_url, MessageBody=audit_event(key))
    stage.sqs.send_message(
        QueueUrl=stage.event_capture_url, MessageBody=audit_event("e1", DetailType.FAILURE)
    )
    seen = audit.collect_events(lab_target, ["e1", "e2"])
    assert (seen.total(DetailType.SUCCESS), seen.total(DetailType.FAILURE)) == (2, 1)
    assert verify.verify_keys(lab_target, ["e1", "e2"], timeout_s=1, count_events=True).success_events == 0
    report = verify.verify_keys(lab_target, ["e1", "e2"], timeout_s=1, count_events=True, counts=seen)
    assert report.ok
    assert report.success_events == 2
