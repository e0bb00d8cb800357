"""The load-test gate: Locust's final stats, the thresholds, the keys file and the verify report."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from loadtest import gate
from loadtest.keyfile import (
    DUPLICATE_REQUEST_NAME,
    KIND_POOL,
    KIND_UNIQUE,
    UNIQUE_REQUEST_NAME,
    KeyFileError,
    KeyLog,
    RecordedKeys,
    read_keys,
)


def _locust_stats_file(tmp_path: Path, samples: dict[str, list[int]], failures: dict[str, int]) -> Path:
    """A file in the format `locust --json-file` writes at shutdown (StatsEntry.serialize per name)."""
    entries = []
    for name, times in samples.items():
        histogram: dict[str, int] = {}
        for response_time in times:
            histogram[str(response_time)] = histogram.get(str(response_time), 0) + 1
        entries.append(
            {
                "name": name,
                "method": "POST",
                "num_requests": len(times),
                "num_none_requests": 0,
                "num_failures": failures.get(name, 0),
                "response_times": histogram,
            }
        )
    path = tmp_path / "locust.json"
    path.write_text(json.dumps(entries))
    return path


# Run in a child interpreter: importing locust gevent-patches the process it is imported in.
_LOCUST_WRITES_STATS = """
import json, sys
from locust.stats import RequestStats, save_stats_json
samples = json.loads(sys.argv[2])
stats = RequestStats()
for name, times in samples.items():
    for response_time in times:
        stats.log_request("POST", name, response_time, 10)
    stats.log_error("POST", name, "HTTP 500")
total = stats.total
print(json.dumps([total.num_requests, total.num_failures, total.get_response_time_percentile(0.95)]))
save_stats_json(stats, sys.argv[1])
"""


def test_reads_locusts_own_output_and_agrees_with_its_total(tmp_path: Path) -> None:
    samples = {
        UNIQUE_REQUEST_NAME: [10] * 90 + [400] * 7 + [1234] * 3,
        DUPLICATE_REQUEST_NAME: [20] * 50 + [95] * 2,
    }
    done = subprocess.run(
        [sys.executable, "-c", _LOCUST_WRITES_STATS, str(tmp_path / "locust"), json.dumps(samples)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    requests, failures, p95 = json.loads(done.stdout.strip().splitlines()[-1])

    stats = gate.read_locust_stats(tmp_path / "locust.json")

    assert (stats.total.requests, stats.total.failures, stats.total.p95_ms) == (requests, failures, p95)
    assert stats.by_name[UNIQUE_REQUEST_NAME].failures == 1


def _stats(requests: int, failures: int, p95: float | None) -> gate.LocustStats:
    return gate.LocustStats(total=gate.RequestStats(gate.AGGREGATED_ROW, requests, failures, p95))


def test_p95_merges_every_request_name(tmp_path: Path) -> None:
    unique = [10] * 90 + [400] * 10
    duplicate = [20] * 50
    path = _locust_stats_file(tmp_path, {UNIQUE_REQUEST_NAME: unique, DUPLICATE_REQUEST_NAME: duplicate}, {})

    stats = gate.read_locust_stats(path)

    # Locust's rule: of 150 requests, the slowest 150 - int(0.95 x 150) = 8 reach the p95 bucket.
    assert stats.total.requests == 150
    assert stats.total.p95_ms == 400
    assert stats.by_name[UNIQUE_REQUEST_NAME].p95_ms == 400
    assert stats.by_name[DUPLICATE_REQUEST_NAME].p95_ms == 20


def test_failures_count_in_the_ratio(tmp_path: Path) -> None:
    path = _locust_stats_file(tmp_path, {UNIQUE_REQUEST_NAME: [5] * 100}, {UNIQUE_REQUEST_NAME: 3})

    stats = gate.read_locust_stats(path)

    assert (stats.total.requests, stats.total.failures) == (100, 3)
    assert stats.total.failure_ratio == pytest.approx(0.03)


def test_missing_or_foreign_stats_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(gate.GateInputError, match="--json-file"):
        gate.read_locust_stats(tmp_path / "absent.json")
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps([{"name": "x"}]))
    with pytest.raises(gate.GateInputError, match="not Locust's"):
        gate.read_locust_stats(foreign)


def test_thresholds_met_gives_no_breach() -> None:
    assert gate.check_load(_stats(1000, 10, 900.0), gate.Thresholds(0.01, 1000.0, 1)) == []


def test_failure_ratio_breach_names_the_threshold() -> None:
    breaches = gate.check_load(_stats(1000, 11, 100.0), gate.Thresholds(0.01, 1000.0, 1))

    assert [breach.threshold for breach in breaches] == ["--max-failure-ratio (LOADTEST_MAX_FAILURE_RATIO)"]
    assert "0.0110" in breaches[0].message


def test_p95_breach_names_the_threshold() -> None:
    breaches = gate.check_load(_stats(1000, 0, 1200.0), gate.Thresholds(0.01, 1000.0, 1))

    assert [breach.threshold for breach in breaches] == ["--max-p95-ms (LOADTEST_MAX_P95_MS)"]
    assert "1200.0 ms > 1000 ms" in breaches[0].message


def test_a_run_without_requests_fails_rather_than_passes() -> None:
    breaches = gate.check_load(_stats(0, 0, None), gate.Thresholds(0.01, 1000.0, 1))

    assert [breach.threshold for breach in breaches] == ["--min-requests (LOADTEST_MIN_REQUESTS)"]


def test_keys_file_round_trip(tmp_path: Path) -> None:
    log = KeyLog()
    log.open(tmp_path / "keys.jsonl")
    log.record(KIND_UNIQUE, "k1")
    log.record(KIND_POOL, "p1")
    log.record(KIND_POOL, "p1")
    log.close()

    keys = read_keys(tmp_path / "keys.jsonl")

    assert keys == RecordedKeys(unique=["k1"], pool={"p1"})
    assert keys.expected == {"k1", "p1"}


def test_keys_file_rejects_foreign_lines(tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    path.write_text('{"kind": "unique", "idempotency_key": "k1"}\nnot json\n')
    with pytest.raises(KeyFileError, match=":2:"):
        read_keys(path)


def test_keys_must_match_accepted_unique_sends() -> None:
    stats = gate.LocustStats(
        total=gate.RequestStats(gate.AGGREGATED_ROW, 12, 2, 5.0),
        by_name={UNIQUE_REQUEST_NAME: gate.RequestStats(UNIQUE_REQUEST_NAME, 12, 2, 5.0)},
    )

    assert gate.check_keys(RecordedKeys([f"k{i}" for i in range(10)], set()), stats) == []
    short = gate.check_keys(RecordedKeys([f"k{i}" for i in range(9)], set()), stats)
    assert [breach.threshold for breach in short] == ["keys file"]


def test_two_unique_payloads_with_one_key_fail() -> None:
    stats = gate.LocustStats(
        total=gate.RequestStats(gate.AGGREGATED_ROW, 3, 0, 5.0),
        by_name={UNIQUE_REQUEST_NAME: gate.RequestStats(UNIQUE_REQUEST_NAME, 3, 0, 5.0)},
    )

    breaches = gate.check_keys(RecordedKeys(["a", "b", "a"], set()), stats)

    assert [breach.threshold for breach in breaches] == ["unique keys"]
    assert "a x2" in breaches[0].message


def test_no_recorded_key_fails() -> None:
    assert [b.threshold for b in gate.check_keys(RecordedKeys([], set()), _stats(5, 5, 1.0))] == ["keys"]


def _report(**fields: object) -> SimpleNamespace:
    base: dict[str, object] = {
        "expected": 3,
        "succeeded": 3,
        "missing": [],
        "not_succeeded": [],
        "success_events": 3,
        "ok": True,
    }
    return SimpleNamespace(**(base | fields))


def test_verify_report_all_succeeded_passes() -> None:
    assert gate.check_verify(_report(), 3, count_events=True) == []


def test_verify_report_missing_records_fail() -> None:
    breaches = gate.check_verify(_report(succeeded=2, missing=["k3"], ok=False), 3, count_events=True)

    assert [breach.threshold for breach in breaches] == ["verify records"]
    assert "2/3 records SUCCEEDED, 1 missing" in breaches[0].message


def test_verify_report_extra_success_events_fail_only_when_counted() -> None:
    report = _report(success_events=4, ok=False)

    assert [b.threshold for b in gate.check_verify(report, 3, count_events=True)] == ["verify events"]
    assert [b.threshold for b in gate.check_verify(report, 3, count_events=False)] == ["verify"]


def test_a_key_with_two_distinct_success_events_fails_even_when_the_total_matches() -> None:
    report = _report(success_events=3, duplicate_events={"k1": 2}, ok=False)

    [breach] = gate.check_verify(report, 3, count_events=True)

    assert breach.threshold == "verify events"
    assert "1 keys with more than one: k1 x2" in breach.message


def test_duplicate_deliveries_are_a_figure_not_a_breach() -> None:
    """At-least-once delivery may repeat an event: counted once by id, reported, never failed."""
    assert gate.check_verify(_report(duplicate_deliveries=7), 3, count_events=True) == []


def _gate_args(stats_json: Path, keys_file: Path, report: Path, **overrides: object) -> argparse.Namespace:
    args = gate.build_parser().parse_args(
        [
            "--stats-json",
            str(stats_json),
            "--keys-file",
            str(keys_file),
            "--report",
            str(report),
            "--skip-verify",
        ]
    )
    for name, value in overrides.items():
        setattr(args, name, value)
    return args


def test_run_gate_exit_status_and_report(tmp_path: Path) -> None:
    stats_json = _locust_stats_file(tmp_path, {UNIQUE_REQUEST_NAME: [50] * 20}, {})
    keys_file = tmp_path / "keys.jsonl"
    keys_file.write_text(
        "".join(json.dumps({"kind": KIND_UNIQUE, "idempotency_key": f"k{i}"}) + "\n" for i in range(20))
    )
    report = tmp_path / "gate.json"

    out = io.StringIO()
    assert gate.run_gate(_gate_args(stats_json, keys_file, report), out) == 0
    assert "GATE PASSED" in out.getvalue()
    assert json.loads(report.read_text())["passed"] is True

    out = io.StringIO()
    assert gate.run_gate(_gate_args(stats_json, keys_file, report, max_p95_ms=10.0), out) == 1
    assert "GATE FAILED: --max-p95-ms (LOADTEST_MAX_P95_MS): p95 latency 50.0 ms > 10 ms" in out.getvalue()
    assert json.loads(report.read_text())["passed"] is False


def test_thresholds_default_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gate.ENV_MAX_P95_MS, "250")
    monkeypatch.setenv(gate.ENV_MAX_FAILURE_RATIO, "0.05")

    args = gate.build_parser().parse_args(["--stats-json", "s.json", "--keys-file", "k.jsonl"])

    assert (args.max_p95_ms, args.max_failure_ratio) == (250.0, 0.05)
