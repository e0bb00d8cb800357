"""Every automated gameday, end to end on the local cloud, plus a drill interrupted by Ctrl-C.

Each drill asserts its own observations and fails when it cannot make them; these tests check
that it passed, that failure_mode is none afterwards, and that its report holds the steps a
person would look for.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from functions.common.names import FailureMode, Output
from lab.gamedays import run_gameday
from lab.runs import RUNS_DIR_ENV
from stage_client.environment import target_environment
from stage_client.failure_mode import read_failure_mode, reset_failure_mode
from stage_client.status import queue_depth
from stage_client.target import Target
from tests import REPO_ROOT

LAB = [sys.executable, "-m", "lab.cli"]
pytestmark = pytest.mark.usefixtures("quiet_stage")


@pytest.fixture(autouse=True)
def runs_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The drills' run files go to the test's folder, never the developer's .lab."""
    monkeypatch.setenv(RUNS_DIR_ENV, str(tmp_path / "runs"))


def pending(target: Target, label: str) -> int:
    depth = queue_depth(target, label, with_age=False)
    assert depth is not None
    return depth.visible + depth.in_flight + depth.delayed


@pytest.fixture
def quiet_stage(local_target: Target) -> None:
    """Each drill starts from an idle stage: no fault on, main queue settled, DLQ empty.

    Other tests of the session share the stage; a message they left in the DLQ would make a
    drill's DLQ assertions ambiguous (the drill itself refuses to start then), so it is removed.
    """
    reset_failure_mode(local_target, set_by="test setup")
    sqs = local_target.client("sqs")
    dlq_url = local_target.output(Output.DLQ_URL)
    deadline = time.monotonic() + 90
    while pending(local_target, "main") or pending(local_target, "dlq"):
        assert time.monotonic() < deadline, "the stage did not settle before the drill"
        for message in sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            print(f"removing a message left in the DLQ by an earlier test: {message['MessageId']}")
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])


def run_drill(target: Target, name: str, tmp_path: Path, **kwargs: Any) -> dict[str, Any]:
    result = run_gameday(target, name, report_dir=tmp_path, printer=print, **kwargs)
    assert result.outcome == "passed", f"{name}: {result.error}"
    assert read_failure_mode(target).effective == FailureMode.NONE.value
    assert result.json_path.exists()
    assert "<svg" in result.html_path.read_text()
    report = json.loads(result.json_path.read_text())
    assert report["samples"], "the sampler recorded nothing"
    return report


def labels(report: dict[str, Any]) -> list[str]:
    return [entry["label"] for entry in report["timeline"]]


def test_poison_pill(local_target: Target, tmp_path: Path) -> None:
    report = run_drill(local_target, "poison-pill", tmp_path, events=5, timeout_s=300)
    steps = labels(report)
    for step in ("first DLQ message", "preview", "fix", "redrive finished", "DLQ drained", "verified"):
        assert step in steps
    assert steps.count("alarm ALARM") == 2
    assert steps.count("alarm OK") == 2
    # Each state change reached a subscriber of the alarm topic, not only the alarm's own state.
    assert steps.count("notified ALARM") == 2
    assert steps.count("notified OK") == 2
    assert steps.index("alarm topic subscriber found") < steps.index("inject")
    assert (
        steps.index("alarm ALARM")
        < steps.index("fix")
        < steps.index("redrive finished")
        < steps.index("alarm OK")
    )
    assert any(s["queues"]["dlq"]["visible"] >= 5 for s in report["samples"])


def test_slow_downstream(local_target: Target, tmp_path: Path) -> None:
    report = run_drill(local_target, "slow-downstream", tmp_path, events=4, timeout_s=240)
    steps = labels(report)
    assert "message re-surfaced after the visibility timeout" in steps
    assert steps.index("message re-surfaced after the visibility timeout") < steps.index("fix")


def test_random_fail_p30(local_target: Target, tmp_path: Path) -> None:
    report = run_drill(local_target, "random-fail-p30", tmp_path, events=20, timeout_s=240)
    assert "partial batch observed" in labels(report)
    metrics = next(e for e in report["timeline"] if e["label"] == "worker metrics")["details"]
    # Only the queue's own duplicate deliveries (at-least-once mode, recorded by the engine) came back.
    assert metrics["platformDuplicatesRecorded"] is True
    assert metrics["duplicatesOfDrillKeys"] <= metrics["platformDuplicates"]
    assert report["assertions"][-1] == "20 events SUCCEEDED exactly once"


def test_duplicate_submit(local_target: Target, tmp_path: Path) -> None:
    report = run_drill(local_target, "duplicate-submit", tmp_path, events=10, timeout_s=120)
    duplicated = next(e for e in report["timeline"] if e["label"] == "ingest queued each event twice")
    assert duplicated["details"]["duplicated"] == 10
    flagged = next(e for e in report["timeline"] if e["label"] == "worker flagged the second copies")
    assert flagged["details"]["keys"] == 10
    assert flagged["details"]["platformDuplicatesRecorded"] is True
    assert 10 <= flagged["details"]["lines"] <= 10 + flagged["details"]["platformDuplicates"]
    detected = next(e for e in report["timeline"] if e["label"] == "worker detected the second copies")
    assert detected["details"]["DuplicatesDetected"] >= 10


def test_failure_mode_expiry(local_target: Target, tmp_path: Path) -> None:
    report = run_drill(local_target, "failure-mode-expiry", tmp_path, events=3, timeout_s=180)
    steps = labels(report)
    assert steps.index("expired") < steps.index("processing recovered without a reset")
    # The only restore is the guard's, after the recovery was observed.
    assert steps.index("processing recovered without a reset") < steps.index("restored: failure_mode none")


def test_redrive_quarantine(local_target: Target, tmp_path: Path) -> None:
    report = run_drill(local_target, "redrive-quarantine", tmp_path, events=1, timeout_s=600)
    assert "quarantined" in labels(report)
    quarantine = queue_depth(local_target, "quarantine", with_age=False)
    main = queue_depth(local_target, "main", with_age=False)
    assert quarantine is not None
    assert main is not None
    assert main.visible + main.in_flight + main.delayed == 0


def target_env(target: Target, state_dir: Path) -> dict[str, str]:
    """What a pipeline step would get: outputs as environment variables (lab --target env)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    return {**env, **target_environment(target), "LAB_STATE_DIR": str(state_dir)}


def test_an_interrupted_drill_restores_failure_mode_none(local_target: Target, tmp_path: Path) -> None:
    """Ctrl-C in the middle of poison-pill: the process exits 130 and the mode is back to none."""
    reports = tmp_path / "reports"
    process = subprocess.Popen(
        [*LAB, "--target", "env", "gameday", "poison-pill", "--events", "2", "--report-dir", str(reports)],
        cwd=REPO_ROOT,
        env=target_env(local_target, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while read_failure_mode(local_target).effective != FailureMode.POISON_PAYLOAD.value:
            assert process.poll() is None, f"the drill ended before injecting: {process.communicate()[0]}"
            assert time.monotonic() < deadline, "the drill never injected poison_payload"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output
    assert read_failure_mode(local_target).effective == FailureMode.NONE.value
    [report_file] = reports.glob("*.json")
    report = json.loads(report_file.read_text())
    assert report["outcome"] == "interrupted"
    assert "restored: failure_mode none" in labels(report)
