"""The load test's pass/fail gate: Locust's stats against thresholds, then every accepted key verified.

Run after Locust (`python -m loadtest.gate --stats-json ... --keys-file ...`); exit status 1 names
each breached threshold. `python -m loadtest` runs Locust and this gate in one step.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from loadtest.keyfile import UNIQUE_REQUEST_NAME, KeyFileError, RecordedKeys, read_keys
from stage_client.audit import NoEventAuditError, require_event_audit
from stage_client.target import Target, TargetError, resolve_target

# Who counts events, for the error on a stage without the event audit queue.
COUNTING_GATE = "the load-test gate (--no-count-events skips the count)"

AGGREGATED_ROW = "Aggregated"

# Thresholds: command-line flag, environment variable, default.
ENV_MAX_FAILURE_RATIO = "LOADTEST_MAX_FAILURE_RATIO"
ENV_MAX_P95_MS = "LOADTEST_MAX_P95_MS"
ENV_MIN_REQUESTS = "LOADTEST_MIN_REQUESTS"
ENV_VERIFY_TIMEOUT_S = "LOADTEST_VERIFY_TIMEOUT_S"
DEFAULT_MAX_FAILURE_RATIO = 0.01
DEFAULT_MAX_P95_MS = 1000.0
DEFAULT_MIN_REQUESTS = 1
DEFAULT_VERIFY_TIMEOUT_S = 120.0


class GateInputError(RuntimeError):
    """An input the gate needs is missing or unreadable (no Locust stats file)."""


@dataclass(frozen=True)
class RequestStats:
    """The figures of one request name (or of all: Aggregated) from Locust's final stats."""

    name: str
    requests: int
    failures: int
    p95_ms: float | None

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class LocustStats:
    total: RequestStats
    by_name: dict[str, RequestStats] = field(default_factory=dict)


@dataclass(frozen=True)
class Thresholds:
    max_failure_ratio: float = DEFAULT_MAX_FAILURE_RATIO
    max_p95_ms: float = DEFAULT_MAX_P95_MS
    min_requests: int = DEFAULT_MIN_REQUESTS


@dataclass(frozen=True)
class Breach:
    """A threshold the run did not meet: which one (flag and environment variable) and by how much."""

    threshold: str
    message: str

    def __str__(self) -> str:
        return f"{self.threshold}: {self.message}"


def read_locust_stats(json_path: Path) -> LocustStats:
    """Parse the stats Locust writes at shutdown (`--json-file`); the total merges every request name.

    Locust's CSV is rewritten once a second by a background greenlet and misses the last second of
    the run (measured: 3,911 of 5,252 requests), so the gate reads the final JSON instead.
    """
    if not json_path.exists():
        raise GateInputError(f"no Locust stats at {json_path} (did Locust run with --json-file?)")
    try:
        entries = json.loads(json_path.read_text(encoding="utf-8"))
        rows: dict[str, RequestStats] = {}
        merged: Counter[int] = Counter()
        requests = failures = timed = 0
        for entry in entries:
            # JSON object keys are strings; Locust's histogram is keyed by rounded milliseconds.
            histogram = {int(ms): int(count) for ms, count in entry["response_times"].items()}
            entry_timed = entry["num_requests"] - entry.get("num_none_requests", 0)
            rows[entry["name"]] = RequestStats(
                name=entry["name"],
                requests=entry["num_requests"],
                failures=entry["num_failures"],
                p95_ms=_p95(histogram, entry_timed),
            )
            merged.update(histogram)
            requests += entry["num_requests"]
            failures += entry["num_failures"]
            timed += entry_timed
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise GateInputError(f"{json_path} is not Locust's --json-file output ({error!r})") from None
    total = RequestStats(AGGREGATED_ROW, requests, failures, _p95(dict(merged), timed))
    return LocustStats(total=total, by_name=rows)


def _p95(histogram: dict[int, int], timed_requests: int) -> float | None:
    """Locust's own percentile rule over its rounded-millisecond histogram, so the figures match its summary.

    Written here rather than imported: importing locust gevent-patches the whole process (ssl,
    threading), which breaks boto3 in the gate and every other test in the same pytest run.
    """
    if not timed_requests:
        return None
    allowed_above = timed_requests - int(timed_requests * 0.95)
    seen_from_top = 0
    for response_time in sorted(histogram, reverse=True):
        seen_from_top += histogram[response_time]
        if seen_from_top >= allowed_above:
            return float(response_time)
    return 0.0


def check_load(stats: LocustStats, thresholds: Thresholds) -> list[Breach]:
    """Failure ratio, p95 latency and a minimum request count, on the aggregated row."""
    breaches: list[Breach] = []
    total = stats.total
    if total.requests < thresholds.min_requests:
        breaches.append(
            Breach(
                f"--min-requests ({ENV_MIN_REQUESTS})",
                f"{total.requests} requests < minimum {thresholds.min_requests}: the load did not run",
            )
        )
        return breaches
    if total.failure_ratio > thresholds.max_failure_ratio:
        breaches.append(
            Breach(
                f"--max-failure-ratio ({ENV_MAX_FAILURE_RATIO})",
                f"failure ratio {total.failure_ratio:.4f} ({total.failures}/{total.requests}) "
                f"> {thresholds.max_failure_ratio:.4f}",
            )
        )
    if total.p95_ms is None or total.p95_ms > thresholds.max_p95_ms:
        breaches.append(
            Breach(
                f"--max-p95-ms ({ENV_MAX_P95_MS})",
                f"p95 latency {total.p95_ms} ms > {thresholds.max_p95_ms:g} ms",
            )
        )
    return breaches


def check_keys(keys: RecordedKeys, stats: LocustStats) -> list[Breach]:
    """One recorded key per accepted unique send, and no key shared by two unique payloads."""
    if not keys.expected:
        return [Breach("keys", "no accepted payload was recorded: nothing to verify")]
    breaches: list[Breach] = []
    unique_row = stats.by_name.get(UNIQUE_REQUEST_NAME)
    accepted = unique_row.requests - unique_row.failures if unique_row else 0
    if len(keys.unique) != accepted:
        breaches.append(
            Breach("keys file", f"{len(keys.unique)} unique keys recorded, {accepted} unique sends accepted")
        )
    shared = {key: n for key, n in Counter(keys.unique).items() if n > 1}
    if shared:
        sample = ", ".join(f"{key} x{n}" for key, n in list(shared.items())[:3])
        breaches.append(
            Breach("unique keys", f"{len(shared)} keys came back for more than one unique payload: {sample}")
        )
    return breaches


def _size(value: Any) -> int:
    """VerifyReport fields may be counts or collections of keys."""
    if isinstance(value, int):
        return value
    return len(value)


def check_verify(report: Any, expected: int, *, count_events: bool) -> list[Breach]:
    """The stage client's verify report: one SUCCEEDED record per expected key and, if counted, one
    distinct success event each (events are counted by id: duplicate deliveries, which
    at-least-once delivery allows, are a figure, never a breach)."""
    breaches: list[Breach] = []
    missing, not_succeeded = _size(report.missing), _size(report.not_succeeded)
    if missing or not_succeeded or _size(report.succeeded) != expected:
        breaches.append(
            Breach(
                "verify records",
                f"{_size(report.succeeded)}/{expected} records SUCCEEDED, {missing} missing, "
                f"{not_succeeded} not SUCCEEDED",
            )
        )
    doubled = getattr(report, "duplicate_events", None) or {}
    if count_events and report.success_events is not None and (report.success_events != expected or doubled):
        sample = ", ".join(f"{key} x{n}" for key, n in list(doubled.items())[:3])
        breaches.append(
            Breach(
                "verify events",
                f"{report.success_events} distinct IngestionSuccess events for {expected} unique payloads"
                + (f"; {len(doubled)} keys with more than one: {sample}" if doubled else ""),
            )
        )
    if not breaches and not report.ok:
        breaches.append(Breach("verify", f"stage_client.verify reported a failure: {report}"))
    return breaches


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def add_threshold_arguments(parser: argparse.ArgumentParser) -> None:
    """The threshold flags, shared with the runner (`python -m loadtest`)."""
    parser.add_argument(
        "--max-failure-ratio",
        type=float,
        default=_env_float(ENV_MAX_FAILURE_RATIO, DEFAULT_MAX_FAILURE_RATIO),
        help=f"highest accepted failed/total requests (env {ENV_MAX_FAILURE_RATIO})",
    )
    parser.add_argument(
        "--max-p95-ms",
        type=float,
        default=_env_float(ENV_MAX_P95_MS, DEFAULT_MAX_P95_MS),
        help=f"highest accepted p95 latency over all requests, ms (env {ENV_MAX_P95_MS})",
    )
    parser.add_argument(
        "--min-requests",
        type=int,
        default=int(_env_float(ENV_MIN_REQUESTS, DEFAULT_MIN_REQUESTS)),
        help=f"fewest requests a valid run made (env {ENV_MIN_REQUESTS})",
    )
    parser.add_argument(
        "--verify-timeout",
        type=float,
        default=_env_float(ENV_VERIFY_TIMEOUT_S, DEFAULT_VERIFY_TIMEOUT_S),
        help=f"seconds to wait for every record to reach SUCCEEDED (env {ENV_VERIFY_TIMEOUT_S})",
    )
    parser.add_argument(
        "--no-count-events",
        dest="count_events",
        action="store_false",
        help="skip counting IngestionSuccess events (a stage without the event audit queue)",
    )
    parser.add_argument(
        "--skip-verify", action="store_true", help="check Locust's figures only (no AWS access needed)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtest.gate", description=__doc__)
    parser.add_argument(
        "--stats-json",
        required=True,
        type=Path,
        help="Locust's final stats: <prefix>.json of locust --json-file",
    )
    parser.add_argument("--keys-file", required=True, type=Path, help="the keys file the Locust users wrote")
    parser.add_argument("--target", default=None, help="local (default), env or stage:<envName>")
    parser.add_argument("--report", type=Path, default=None, help="also write the gate's result as JSON here")
    add_threshold_arguments(parser)
    return parser


def run_gate(args: argparse.Namespace, out: TextIO = sys.stdout, target: Target | None = None) -> int:
    """Apply every check, print one line per figure and per breach; 0 when all pass."""
    thresholds = Thresholds(args.max_failure_ratio, args.max_p95_ms, args.min_requests)
    result: dict[str, Any] = {"thresholds": asdict(thresholds)}
    try:
        stats = read_locust_stats(args.stats_json)
        keys = read_keys(args.keys_file)
    except (GateInputError, KeyFileError) as error:
        print(f"GATE FAILED: {error}", file=out)
        return 1
    total = stats.total
    print(
        f"load: {total.requests} requests, {total.failures} failed "
        f"(ratio {total.failure_ratio:.4f}, max {thresholds.max_failure_ratio:g}), "
        f"p95 {total.p95_ms} ms (max {thresholds.max_p95_ms:g})",
        file=out,
    )
    for row in stats.by_name.values():
        print(f"  {row.name}: {row.requests} requests, {row.failures} failed, p95 {row.p95_ms} ms", file=out)
    print(f"keys: {len(keys.unique)} unique payloads accepted, {len(keys.pool)} pool payloads", file=out)
    result["load"] = asdict(total)
    result["keys"] = {"unique": len(keys.unique), "pool": len(keys.pool)}

    breaches = check_load(stats, thresholds) + check_keys(keys, stats)
    if not breaches and not args.skip_verify:
        breaches += _verify(args, keys, out, result, target)
    result["breaches"] = [str(breach) for breach in breaches]
    result["passed"] = not breaches
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    for breach in breaches:
        print(f"GATE FAILED: {breach}", file=out)
    if not breaches:
        print("GATE PASSED", file=out)
    return 1 if breaches else 0


def _verify(
    args: argparse.Namespace, keys: RecordedKeys, out: TextIO, result: dict[str, Any], target: Target | None
) -> list[Breach]:
    # Imported only when verifying, so --skip-verify needs nothing beyond the stats and keys files.
    from stage_client.verify import verify_keys  # noqa: PLC0415

    expected = keys.expected
    if target is None:
        try:
            target = resolve_target(args.target)
        except TargetError as error:
            return [Breach("target", str(error))]
    if args.count_events:
        try:
            require_event_audit(target, COUNTING_GATE)
        except NoEventAuditError as error:
            return [Breach("events", str(error))]
    print(f"verify: {len(expected)} keys against {target.name} (timeout {args.verify_timeout:g} s)", file=out)
    report = verify_keys(target, expected, timeout_s=args.verify_timeout, count_events=args.count_events)
    print(
        f"verify: {_size(report.succeeded)}/{len(expected)} SUCCEEDED, {_size(report.missing)} missing, "
        f"{_size(report.not_succeeded)} not SUCCEEDED, distinct success events {report.success_events}, "
        f"duplicate deliveries {report.duplicate_deliveries}",
        file=out,
    )
    result["verify"] = {
        "expected": len(expected),
        "succeeded": _size(report.succeeded),
        "missing": _size(report.missing),
        "not_succeeded": _size(report.not_succeeded),
        "success_events": report.success_events,
        "keys_with_several_success_events": len(report.duplicate_events),
        "duplicate_deliveries": report.duplicate_deliveries,
    }
    return check_verify(report, len(expected), count_events=args.count_events)


def main(argv: Sequence[str] | None = None) -> int:
    return run_gate(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
