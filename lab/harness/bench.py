"""`make bench`: every goal of issue 14, measured in one run on a lab of its own, each printed as
figure, goal and PASS/FAIL, then one summary line (exit status 0 either way: these are figures).

Phases, in this order (the engine's request recording, which the calls phase needs, stays off
until the timed phases are over):
1. raw SendMessage rate into a scratch queue (1 and 4 clients): the engine's raw request rate;
2. Locust, 8 users: ingest p50/p95, and end to end POST -> SUCCEEDED (events/s, lost);
3. drain of a backlog queued while the worker's mapping was off;
4. redrive of a filled DLQ at jitter 0 through the API (stage_client), until the DLQ is empty and
   every redriven key is SUCCEEDED;
5. calls per event by service, from the engine's request record (lab.harness.calls);
6. (engine stopped) each handler's cold-start import against `import boto3`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from lab.harness import cpu, lifecycle
from lab.harness.bench_phases import (
    DeployedHandler,
    DrainFigures,
    LoadFigures,
    Processes,
    RedriveFigures,
    cold_start_costs,
    deployed_handlers,
    drain_rate,
    load_and_end_to_end,
    raw_send_rate,
    redrive_rate,
)
from lab.harness.bench_report import (
    Comparison,
    Goal,
    engine_bound_limit,
    engine_requests_per_event,
    summary_line,
)
from lab.harness.calls import CallsPerEvent, measure_calls_per_event, stop_recording
from lab.harness.cold_start import ImportCost
from lab.harness.paths import StateDir
from lab.localcloud.engine import auth_default
from stage_client.target import Target

# The goals (issue 14), one definition each.
E2E_EVENTS_PER_SECOND = 60.0
E2E_SHARE_OF_ENGINE_LIMIT = 0.5
INGEST_P95_MS = 100.0
DRAIN_MESSAGES_PER_SECOND = 150.0
REDRIVE_MESSAGES_PER_SECOND = 200.0
DYNAMODB_WRITES_PER_NEW_EVENT = 2.0
PUT_EVENTS_PER_EVENT = 0.1
# "~0 SSM reads": the failure mode is read at most once per cache period per container.
SSM_READS_PER_EVENT = 0.05
COLD_START_IMPORT_RATIO = 1.5


@dataclass(frozen=True)
class BenchFigures:
    raw_1: float
    raw_4: float
    load: LoadFigures
    drain: DrainFigures
    redrive: RedriveFigures
    calls: CallsPerEvent
    imports: tuple[ImportCost, ...] = ()


def goals(figures: BenchFigures) -> list[Goal]:
    load, calls = figures.load, figures.calls
    per_event = engine_requests_per_event(calls.new) if calls.new else NAN
    limit = engine_bound_limit(figures.raw_4, per_event) if calls.new else NAN
    new = defaultdict(lambda: NAN, calls.new)
    duplicate = defaultdict(lambda: NAN, calls.duplicate)
    ssm = new["SSM GetParameter"]
    # A phase that broke counted nothing: it cannot claim that nothing was lost.
    lost = [
        NAN if math.isnan(rate) else float(count)
        for rate, count in (
            (load.e2e_events_per_second, load.lost),
            (figures.drain.rate, figures.drain.lost),
            (figures.redrive.rate, figures.redrive.lost),
        )
    ]
    result = [
        Goal("end to end POST -> SUCCEEDED (IAM enforced)", load.e2e_events_per_second,
             Comparison.AT_LEAST, E2E_EVENTS_PER_SECOND, "events/s"),
        Goal("end to end / engine-bound limit", load.e2e_events_per_second / limit,
             Comparison.AT_LEAST, E2E_SHARE_OF_ENGINE_LIMIT, "",
             f"limit {limit:.0f} events/s = raw {figures.raw_4:.0f} req/s / "
             f"{per_event:.2f} requests per event"),
        Goal("events lost (end to end, drain, redrive)", sum(lost), Comparison.AT_MOST, 0, "events",
             " + ".join(f"{part:.0f}" for part in lost)),
        Goal("ingest p95 at Locust users", load.p95_ms, Comparison.AT_MOST, INGEST_P95_MS, "ms",
             f"p50 {load.p50_ms:.0f} ms, {load.rps:.1f} req/s, {load.failures} failed"),
        Goal("backlog drain", figures.drain.rate, Comparison.AT_LEAST, DRAIN_MESSAGES_PER_SECOND, "msg/s",
             f"{figures.drain.seconds:.1f} s"),
        Goal("redrive at jitter 0", figures.redrive.rate, Comparison.AT_LEAST, REDRIVE_MESSAGES_PER_SECOND,
             "msg/s", f"{figures.redrive.moved} moved in {figures.redrive.seconds:.1f} s, drained after "
             f"{figures.redrive.drained_seconds:.1f} s, {figures.redrive.lost} not SUCCEEDED"),
        Goal("ingest SendMessage per event", new["ingest SQS SendMessage (main queue)"],
             Comparison.AT_MOST, 1.0, ""),
        Goal("DynamoDB writes per new event", new["DynamoDB writes (state table)"],
             Comparison.AT_MOST, DYNAMODB_WRITES_PER_NEW_EVENT, ""),
        Goal("DynamoDB writes per duplicate", duplicate["DynamoDB writes (state table)"],
             Comparison.AT_MOST, 0.0, ""),
        Goal("PutEvents per event", new["EventBridge PutEvents"], Comparison.AT_MOST,
             PUT_EVENTS_PER_EVENT, ""),
        Goal("SSM reads per event", ssm, Comparison.AT_MOST, SSM_READS_PER_EVENT, ""),
    ]  # fmt: skip
    result += [
        Goal(f"cold-start import {cost.module}", cost.ratio, Comparison.AT_MOST, COLD_START_IMPORT_RATIO,
             "x boto3", f"{cost.seconds * 1000:.0f} ms vs {cost.baseline_seconds * 1000:.0f} ms")
        for cost in figures.imports
    ]  # fmt: skip
    return result


def report(figures: BenchFigures, args: argparse.Namespace) -> str:
    auth = "on" if auth_default() else "off"
    cores = os.cpu_count() or 1
    lines = [
        "",
        f"Local cloud figures (ministack, IAM enforcement {auth}, {args.users} Locust users, "
        f"{args.seconds} s, load average {os.getloadavg()[0]:.1f} on {cores} cores)",
        f"  engine raw SendMessage {figures.raw_1:.0f} msg/s (1 client), "
        f"{figures.raw_4:.0f} msg/s (4 clients)",
        f"  ingest {figures.load.requests} requests, {figures.load.failures} failed",
        f"  end to end: {figures.load.cpu.line(cores)}",
        f"  drain:      {figures.drain.cpu.line(cores)}",
        "  log bytes per event (message + 26 B) "
        + ", ".join(f"{group} {size:.0f}" for group, size in sorted(figures.load.log_bytes.items()))
        + f"; total {sum(figures.load.log_bytes.values()):.0f}",
        *figures.calls.lines(),
        "",
        "Goals (issue 14)",
        *(goal.line() for goal in goals(figures)),
        "",
        summary_line(goals(figures)),
    ]
    return "\n".join(lines)


NAN = float("nan")
# What a phase that broke reports: NaN figures fail every goal they feed, nothing is invented.
BROKEN_CPU = cpu.CpuPerEvent(NAN, NAN, NAN)
BROKEN_LOAD = LoadFigures(0, 0, NAN, NAN, NAN, NAN, 0, {}, BROKEN_CPU)
BROKEN_DRAIN = DrainFigures(NAN, NAN, 0, BROKEN_CPU)
BROKEN_REDRIVE = RedriveFigures(0, NAN, NAN, 0)
BROKEN_CALLS = CallsPerEvent(events=0, succeeded=0, new={}, duplicate={}, raw_new={}, raw_duplicate={})

T = TypeVar("T")


def _phase(log: Callable[[str], None], name: str, run: Callable[[], T], broken: T) -> T:
    """Run one phase and print its figures at once (a later phase that breaks loses nothing);
    a phase that raises is reported as broken and the next phases still run."""
    log(f"{name}...")
    try:
        figures = run()
    except Exception as error:
        log(f"  {name} broke: {type(error).__name__}: {error}")
        return broken
    log(f"  {figures}")
    return figures


def measure(
    target: Target, state: StateDir, args: argparse.Namespace, workdir: Path, log: Callable[[str], None]
) -> tuple[BenchFigures, list[DeployedHandler]]:
    """The figures of the engine's phases, and the deployed handlers (timed once the engine stops)."""
    processes = Processes.of(state)
    raw_1 = _phase(
        log, "raw SendMessage rate, 1 client", lambda: raw_send_rate(target, args.raw_messages, 1), NAN
    )
    raw_4 = _phase(
        log, "raw SendMessage rate, 4 clients", lambda: raw_send_rate(target, args.raw_messages, 4), NAN
    )
    load = _phase(
        log,
        f"Locust, {args.users} users for {args.seconds} s, then until every event SUCCEEDED",
        lambda: load_and_end_to_end(
            target, args.users, args.seconds, workdir, warmup_seconds=args.warmup_seconds, processes=processes
        ),
        BROKEN_LOAD,
    )
    drain = _phase(
        log,
        f"drain of a {args.backlog}-message backlog",
        lambda: drain_rate(target, args.backlog, processes),
        BROKEN_DRAIN,
    )
    redriven = _phase(
        log,
        f"redrive of {args.redrive} DLQ messages at jitter 0",
        lambda: redrive_rate(target, args.redrive),
        BROKEN_REDRIVE,
    )
    calls = _phase(
        log,
        "calls per event (engine request record)",
        lambda: measure_calls_per_event(target, events=args.call_events, log=log),
        BROKEN_CALLS,
    )
    stop_recording(target)
    return BenchFigures(raw_1, raw_4, load, drain, redriven, calls), deployed_handlers(target, workdir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.harness.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=8, help="Locust users (default 8)")
    parser.add_argument("--seconds", type=int, default=20, help="Locust run time (default 20)")
    parser.add_argument(
        "--warmup-seconds", type=int, default=10, help="Locust warm-up before the measured run (default 10)"
    )
    parser.add_argument("--backlog", type=int, default=2000, help="drain backlog (default 2000)")
    parser.add_argument("--redrive", type=int, default=1000, help="DLQ messages redriven (default 1000)")
    parser.add_argument("--raw-messages", type=int, default=1000, help="raw SendMessage calls (default 1000)")
    parser.add_argument("--call-events", type=int, default=100, help="events per calls phase (default 100)")
    parser.add_argument(
        "--import-runs", type=int, default=5, help="fresh processes per import timing (default 5)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here (JSON)")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, flush=True)

    # Stopped with SIGTERM (or SIGINT, which a background job ignores), the lab of its own is
    # still taken down by the `finally` below.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as workdir:
        state = StateDir(Path(workdir) / "state")
        try:
            log("bringing up a lab of its own (fresh engine, deploy)...")
            target = lifecycle.up(state, log=lambda _msg: None)
            measured, handlers = measure(target, state, args, Path(workdir), log)
        finally:
            lifecycle.down(state)
        log("cold-start imports (engine stopped)...")
        figures = replace(measured, imports=tuple(cold_start_costs(handlers, args.import_runs)))
    print(report(figures, args))
    if args.json:
        args.json.write_text(json.dumps(_to_json(figures), indent=2, default=str) + "\n")
    return 0


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def _to_json(figures: BenchFigures) -> dict[str, Any]:
    return {
        "raw": {"1": figures.raw_1, "4": figures.raw_4},
        "load": figures.load.__dict__,
        "drain": figures.drain.__dict__,
        "redrive": figures.redrive.__dict__,
        "calls": figures.calls.to_dict(),
        "imports": [cost.__dict__ | {"ratio": cost.ratio} for cost in figures.imports],
        "goals": [
            {"name": g.name, "figure": g.figure, "bound": g.bound, "passed": g.passed} for g in goals(figures)
        ],
    }


if __name__ == "__main__":
    sys.exit(main())
