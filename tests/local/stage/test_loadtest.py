"""A short Locust run against the local cloud passes the gate, and the same figures can fail it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from loadtest import gate
from loadtest.run import build_parser, run
from stage_client.target import Target

pytestmark = pytest.mark.local

# The local cloud shares two cores with Locust and the worker processes: latency is looser than on AWS.
LOCAL_MAX_P95_MS = "2000"
# A functional check, not a capacity test: paced well below what a warm local stage sustains
# (measured ~50 requests/s with 4 unpaced users), so the test is about correctness.
RPS_PER_USER = "5"


def test_short_load_passes_the_gate(local_target: Target, tmp_path: Path) -> None:
    args = build_parser().parse_args(
        [
            "--users", "2",
            "--spawn-rate", "2",
            "--run-time", "10s",
            "--rps-per-user", RPS_PER_USER,
            "--out-dir", str(tmp_path),
            "--max-p95-ms", LOCAL_MAX_P95_MS,
            "--verify-timeout", "120",
        ]
    )  # fmt: skip
    out = io.StringIO()

    status = run(args, target=local_target, out=out)

    assert status == 0, out.getvalue()
    result = json.loads((tmp_path / "gate.json").read_text())
    assert result["passed"] is True
    assert result["load"]["requests"] > 0
    verify = result["verify"]
    assert verify["expected"] == result["keys"]["unique"] + result["keys"]["pool"] > 0
    assert verify["succeeded"] == verify["expected"]
    assert verify["missing"] == verify["not_succeeded"] == 0
    assert verify["success_events"] == verify["expected"]

    # The gate judges these same figures: an unreachable latency threshold fails the run.
    strict = gate.build_parser().parse_args(
        [
            "--stats-json", str(tmp_path / "locust.json"),
            "--keys-file", str(tmp_path / "keys.jsonl"),
            "--max-p95-ms", "0",
            "--skip-verify",
        ]
    )  # fmt: skip
    strict_out = io.StringIO()
    assert gate.run_gate(strict, strict_out) == 1
    assert "GATE FAILED: --max-p95-ms" in strict_out.getvalue()
