"""The `lab` command itself, as a subprocess against the local cloud (through --target env)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stage_client.environment import target_environment
from stage_client.target import Target
from tests import REPO_ROOT


@pytest.fixture
def lab(local_target: Target, tmp_path: Path) -> Any:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(target_environment(local_target), LAB_STATE_DIR=str(tmp_path))

    def run(*args: str, timeout: float = 120) -> tuple[int, Any]:
        completed = subprocess.run(
            [sys.executable, "-m", "lab.cli", "--target", "env", "--json", *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        try:
            return completed.returncode, json.loads(completed.stdout)
        except json.JSONDecodeError:
            pytest.fail(f"lab {' '.join(args)} printed no JSON: {completed.stdout}\n{completed.stderr}")

    return run


def test_smoke_passes(lab: Any) -> None:
    code, report = lab("smoke")
    assert code == 0, report
    assert [check["name"] for check in report["checks"]] == [
        "POST /events -> 202",
        "record SUCCEEDED",
        "GET /redrive/preview -> 200",
    ]


def test_send_then_verify_by_run_id(lab: Any) -> None:
    code, sent = lab("send", "--count", "5")
    assert code == 0
    assert len({event["idempotency_key"] for event in sent["events"]}) == 5
    code, report = lab("verify", "--run-id", sent["runId"], "--count-events", "--timeout", "60")
    assert code == 0, report
    assert (report["expected"], report["succeeded"], report["success_events"]) == (5, 5, 5)
    # The same payloads again: same keys, deduplicated by the worker, so still one record each.
    code, again = lab("send", "--duplicate-of", sent["runId"])
    assert code == 0
    assert [e["idempotency_key"] for e in again["events"]] == [e["idempotency_key"] for e in sent["events"]]


def test_verify_fails_for_unknown_keys(lab: Any, tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("never-sent-0001\n")
    code, report = lab("verify", "--keys-file", str(keys), "--timeout", "2")
    assert code == 1
    assert report["missing"] == ["never-sent-0001"]


def test_failure_mode_set_get_reset(lab: Any) -> None:
    code, state = lab("failure-mode", "set", "slow_downstream", "--ttl", "30")
    assert code == 0
    assert (state["effective"], state["resolution"]) == ("slow_downstream", "active")
    assert state["guardrails_from"] == "worker configuration"
    code, state = lab("failure-mode", "reset")
    assert (code, state["effective"]) == (0, "none")


def test_failure_mode_reset_via_the_reset_function(lab: Any) -> None:
    lab("failure-mode", "set", "poison_payload", "--ttl", "30")
    code, state = lab("failure-mode", "reset", "--via-function")
    assert (code, state["effective"], state["resolution"]) == (0, "none", "none")


def test_status_lists_queues_alarms_and_records(lab: Any) -> None:
    code, status = lab("status")
    assert code == 0
    assert {"main", "dlq", "quarantine"} <= set(status["queues"])
    assert status["alarms"], "the stage's alarms were not found by their alarm topic action"
    assert all(alarm["state"] in {"OK", "ALARM", "INSUFFICIENT_DATA"} for alarm in status["alarms"])


def test_redrive_preview_and_an_empty_redrive(lab: Any) -> None:
    code, preview = lab("redrive", "preview", "--max-messages", "5")
    assert code == 0
    assert isinstance(preview["messages"], list)
    code, job = lab("redrive", "start", "--max-messages", "5", "--jitter", "0", "--wait", "--timeout", "60")
    assert code == 0, job
    assert job["status"] == "SUCCEEDED"


def test_fis_is_refused_on_the_local_cloud(lab: Any) -> None:
    code, answer = lab("gameday", "slow-downstream", "--injector", "fis")
    assert code == 2
    assert "AWS-only" in answer["error"]
