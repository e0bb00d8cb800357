"""The drill runner against moto: restore on pass, failure, error and SIGINT/SIGTERM; the report."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from functions.common.names import FAILURE_MODE_PARAMETER, FailureMode, Output
from lab.gamedays import InjectorError, NoEventAuditError, run_gameday
from lab.gamedays.drills import DRILLS
from lab.gamedays.injectors import SsmInjector
from lab.gamedays.runner import DrillContext, DrillFailed
from lab.gamedays.spec import DrillSpec, stage_timing
from stage_client.failure_mode import StageGuardrails, read_failure_mode
from stage_client.target import Target

REGION = "us-east-1"


def stored_mode(stage: Any) -> str:
    value = stage.ssm.get_parameter(Name=FAILURE_MODE_PARAMETER)["Parameter"]["Value"]
    return str(json.loads(value)["mode"]) if value.startswith("{") else str(value)


def inject_then(behaviour: str) -> DrillSpec:
    """A drill that injects poison_payload, checks it is live, then passes/fails/raises/hangs."""

    def run(ctx: DrillContext) -> list[str]:
        ctx.mark("inject", **ctx.injector.inject(ctx, FailureMode.POISON_PAYLOAD, ttl_seconds=60))
        live = read_failure_mode(ctx.target, guardrails=ctx.guardrails)
        ctx.check(live.effective == FailureMode.POISON_PAYLOAD.value, f"not injected: {live}")
        ctx.facts["live_during_drill"] = live.effective
        if behaviour == "fail":
            ctx.check(False, "the DLQ never grew")
        if behaviour == "raise":
            raise RuntimeError("the API went away")
        if behaviour == "hang":
            ctx.wait_until("something that never happens", lambda: None, interval_s=0.05)
        return ["it worked"]

    return DrillSpec(run=run, summary=f"test drill ({behaviour})", default_events=1, default_timeout_s=30)


def run(target: Target, behaviour: str, tmp_path: Path, **kwargs: Any) -> Any:
    lines: list[str] = []
    result = run_gameday(
        target,
        "test",
        report_dir=tmp_path,
        printer=lines.append,
        drills={"test": inject_then(behaviour)},
        **kwargs,
    )
    return result, lines


def test_a_passing_drill_restores_none_and_writes_its_report(
    lab_target: Target, stage: Any, tmp_path: Path
) -> None:
    stage.sqs.send_message(QueueUrl=stage.dlq_url, MessageBody="x")
    result, lines = run(lab_target, "pass", tmp_path)
    assert (result.outcome, result.exit_code, result.error) == ("passed", 0, None)
    assert result.report["facts"]["live_during_drill"] == "poison_payload"
    assert stored_mode(stage) == "none"
    labels = [entry["label"] for entry in result.report["timeline"]]
    assert labels[0] == "inject"
    assert labels[-1] == "restored: failure_mode none"
    assert any("inject" in line for line in lines)
    saved = json.loads(result.json_path.read_text())
    assert saved["assertions"] == ["it worked"]
    assert saved["samples"][0]["queues"]["dlq"]["visible"] == 1
    page = result.html_path.read_text()
    assert "<svg" in page
    assert "<polyline" in page
    assert "passed" in page


def test_a_failing_drill_restores_none_and_exits_1(lab_target: Target, stage: Any, tmp_path: Path) -> None:
    result, _ = run(lab_target, "fail", tmp_path)
    assert (result.outcome, result.exit_code) == ("failed", 1)
    assert result.error == "the DLQ never grew"
    assert stored_mode(stage) == "none"
    assert "FAILED: the DLQ never grew" in [entry["label"] for entry in result.report["timeline"]]


def test_an_unexpected_error_restores_none(lab_target: Target, stage: Any, tmp_path: Path) -> None:
    result, _ = run(lab_target, "raise", tmp_path)
    assert (result.outcome, result.exit_code) == ("error", 1)
    assert "the API went away" in result.error
    assert stored_mode(stage) == "none"


def test_a_wait_that_times_out_fails_naming_what_it_waited_for(
    lab_target: Target, stage: Any, tmp_path: Path
) -> None:
    result, _ = run(lab_target, "hang", tmp_path, timeout_s=0.5)
    assert result.outcome == "failed"
    assert "waiting for something that never happens" in result.error
    assert stored_mode(stage) == "none"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_drill_restores_none_and_exits_130(
    lab_target: Target, stage: Any, tmp_path: Path, signum: signal.Signals
) -> None:
    handler_before = signal.getsignal(signum)
    injected = threading.Event()

    def interrupt_once_injected() -> None:
        # Wait until the drill has really set the mode, then signal this process like Ctrl-C would.
        for _ in range(200):
            if stored_mode(stage) == FailureMode.POISON_PAYLOAD.value:
                injected.set()
                break
            threading.Event().wait(0.05)
        os.kill(os.getpid(), signum)

    threading.Thread(target=interrupt_once_injected, daemon=True).start()
    result, _ = run(lab_target, "hang", tmp_path, timeout_s=30)
    assert injected.is_set()
    assert (result.outcome, result.exit_code) == ("interrupted", 130)
    assert signum.name in result.error
    assert stored_mode(stage) == "none"
    assert result.report["timeline"][-2]["label"] == "restored: failure_mode none"
    assert signal.getsignal(signum) == handler_before


def test_fis_is_refused_on_the_local_cloud_before_anything_changes(stage: Any, tmp_path: Path) -> None:
    local = Target(
        name="local", outputs={}, api_url="http://127.0.0.1:9", region=REGION, endpoint_url="http://x"
    )
    with pytest.raises(InjectorError, match="AWS-only"):
        run_gameday(local, "slow-downstream", injector="fis", report_dir=tmp_path, printer=lambda _: None)
    assert stored_mode(stage) == "none"
    assert list(tmp_path.iterdir()) == []


def test_fis_is_refused_for_a_drill_without_an_experiment(lab_target: Target, tmp_path: Path) -> None:
    with pytest.raises(InjectorError, match="no FIS experiment"):
        run_gameday(lab_target, "poison-pill", injector="fis", report_dir=tmp_path, printer=lambda _: None)


def test_a_drill_that_counts_events_refuses_a_stage_without_the_audit_queue(
    lab_target: Target, stage: Any, tmp_path: Path
) -> None:
    """eventAudit false (prod): the drill names the key and stops before anything changes; a drill
    that counts no events still runs there."""
    without = replace(
        lab_target,
        outputs={k: v for k, v in lab_target.outputs.items() if k != Output.EVENT_AUDIT_QUEUE_URL.value},
    )
    counting = replace(inject_then("pass"), counts_events=True)
    with pytest.raises(NoEventAuditError, match=r"gameday test counts .* eventAudit false"):
        run_gameday(without, "test", report_dir=tmp_path, printer=lambda _: None, drills={"test": counting})
    assert stored_mode(stage) == "none"
    assert list(tmp_path.iterdir()) == []
    result, _ = run(without, "pass", tmp_path)
    assert result.outcome == "passed"


def test_every_named_drill_is_registered_with_bounded_defaults() -> None:
    assert set(DRILLS) == {
        "poison-pill",
        "slow-downstream",
        "random-fail-p30",
        "duplicate-submit",
        "failure-mode-expiry",
        "redrive-quarantine",
    }
    assert {name for name, spec in DRILLS.items() if spec.fis} == {"slow-downstream", "random-fail-p30"}
    assert all(1 <= spec.default_events <= 50 and spec.default_timeout_s <= 600 for spec in DRILLS.values())


def test_check_raises_drill_failed(lab_target: Target) -> None:
    ctx = DrillContext(
        target=lab_target,
        name="x",
        events=1,
        timeout_s=1,
        injector=SsmInjector(),
        guardrails=StageGuardrails(),
    )
    ctx.check(True, "fine")
    with pytest.raises(DrillFailed, match="broken"):
        ctx.check(False, "broken")


def test_a_fault_wanted_longer_than_the_max_ttl_is_rewritten_while_the_drill_waits(
    lab_target: Target, stage: Any
) -> None:
    ctx = DrillContext(
        target=lab_target,
        name="keepalive",
        events=1,
        timeout_s=30,
        injector=SsmInjector(),
        guardrails=StageGuardrails(max_ttl_seconds=2),
        printer=lambda _: None,
    )
    injected = ctx.injector.inject(ctx, FailureMode.POISON_PAYLOAD, ttl_seconds=10)
    assert injected["ttl_s"] == 2
    first_expiry = injected["expiresAt"]
    started = time.monotonic()
    ctx.wait_until("3 s to pass", lambda: time.monotonic() - started >= 3, interval_s=0.2)
    state = read_failure_mode(lab_target, guardrails=ctx.guardrails)
    assert state.effective == FailureMode.POISON_PAYLOAD.value
    assert state.expires_at is not None
    assert state.expires_at > first_expiry
    ctx.injector.restore(ctx)
    ctx.wait_until("1.5 s to pass", lambda: time.monotonic() - started >= 4.5, interval_s=0.2)
    assert stored_mode(stage) == "none"


def test_a_fault_within_the_max_ttl_is_never_rewritten(lab_target: Target, stage: Any) -> None:
    injector = SsmInjector()
    ctx = DrillContext(
        target=lab_target,
        name="short",
        events=1,
        timeout_s=30,
        injector=injector,
        guardrails=StageGuardrails(max_ttl_seconds=60),
        printer=lambda _: None,
    )
    injector.inject(ctx, FailureMode.SLOW_DOWNSTREAM, ttl_seconds=2)
    written = stage.ssm.get_parameter(Name=FAILURE_MODE_PARAMETER)["Parameter"]["Value"]
    started = time.monotonic()
    ctx.wait_until("2.5 s to pass", lambda: time.monotonic() - started >= 2.5, interval_s=0.2)
    assert stage.ssm.get_parameter(Name=FAILURE_MODE_PARAMETER)["Parameter"]["Value"] == written
    assert read_failure_mode(lab_target, guardrails=ctx.guardrails).effective == "none"


def test_default_budgets_scale_with_the_stages_queue_and_alarm_settings(
    lab_target: Target, stage: Any
) -> None:
    boto3.client("cloudwatch", region_name=REGION).put_metric_alarm(
        AlarmName="dlq-depth",
        Namespace="AWS/SQS",
        MetricName="ApproximateNumberOfMessagesVisible",
        Dimensions=[{"Name": "QueueName", "Value": "ingest-dlq"}],
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=5,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
        AlarmActions=[lab_target.output(Output.ALARM_TOPIC_ARN)],
    )
    timing = stage_timing(lab_target)
    # The miniature stage: visibility 180 s, maxReceiveCount 5 -> a message reaches the DLQ by 6 x 180 s.
    assert (timing.dlq_trip_s, timing.alarm_s, timing.ok_s) == (1080, 300, 300)
    assert DRILLS["poison-pill"].budget_s(timing, max_redrives=3) == 1080 + 2 * 300 + 120
    assert DRILLS["redrive-quarantine"].budget_s(timing, max_redrives=3) == 4 * 1080 + 120
    assert (
        DRILLS["duplicate-submit"].budget_s(timing, max_redrives=3)
        == DRILLS["duplicate-submit"].default_timeout_s
    )
