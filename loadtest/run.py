"""Run Locust headless against a target for a bounded time, then the gate (`python -m loadtest`).

The target is the lab's (local cloud by default, `--target env` or `stage:<envName>` for a
deployed stage); the run writes its CSV stats, keys file and gate report under one folder.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from loadtest import gate
from stage_client.audit import NoEventAuditError, require_event_audit
from stage_client.target import API_KEY_ENV, Target, TargetError, resolve_target

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
DEFAULT_REPORTS_DIR = Path("reports") / "loadtest"
# Locust needs a few seconds to stop users and write its CSV after --run-time.
STOP_TIMEOUT_S = 5
LOCUST_GRACE_S = 60


_TIMESPAN = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s?)?$")


def run_time_seconds(run_time: str) -> int:
    """Locust's --run-time format (30s, 2m, 1h30m, 45): parsed here because importing locust
    gevent-patches the calling process."""
    match = _TIMESPAN.match(run_time.strip())
    if not run_time.strip() or match is None:
        raise argparse.ArgumentTypeError(f"invalid run time {run_time!r}: use e.g. 30s, 2m, 1h30m")
    hours, minutes, seconds = (int(match.group(unit) or 0) for unit in ("h", "m", "s"))
    return hours * 3600 + minutes * 60 + seconds


def _run_time(value: str) -> str:
    run_time_seconds(value)
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__)
    parser.add_argument("--target", default=None, help="local (default), env or stage:<envName>")
    parser.add_argument("--users", type=int, default=os.environ.get("LOADTEST_USERS", "4"))
    parser.add_argument("--spawn-rate", type=float, default=os.environ.get("LOADTEST_SPAWN_RATE", "4"))
    parser.add_argument(
        "--run-time", type=_run_time, default=os.environ.get("LOADTEST_RUN_TIME", "30s"), help="e.g. 30s, 2m"
    )
    parser.add_argument(
        "--rps-per-user",
        type=float,
        default=os.environ.get("LOADTEST_RPS_PER_USER", "0"),
        help="requests per second per user (0: as fast as the API answers)",
    )
    parser.add_argument(
        "--duplicate-pool-size", type=int, default=os.environ.get("LOADTEST_DUPLICATE_POOL_SIZE", "20")
    )
    parser.add_argument("--run-id", default=None, help="default: a random id, carried by every payload")
    parser.add_argument("--out-dir", type=Path, default=None, help=f"default: {DEFAULT_REPORTS_DIR}/<run id>")
    gate.add_threshold_arguments(parser)
    return parser


def worst_case_seconds(args: argparse.Namespace) -> float:
    """The longest `python -m loadtest` with these arguments can take: Locust's run time and the grace
    it is given to stop, then the gate's wait for every record (none with --skip-verify)."""
    verify = 0 if args.skip_verify else float(args.verify_timeout)
    return run_time_seconds(args.run_time) + LOCUST_GRACE_S + verify


def run(args: argparse.Namespace, target: Target | None = None, out: TextIO = sys.stdout) -> int:
    """Locust first (its own exit status is ignored: the gate judges the figures), then the gate."""
    if target is None:
        try:
            target = resolve_target(args.target)
        except TargetError as error:
            print(f"GATE FAILED: target: {error}", file=out)
            return 1
    if args.count_events and not args.skip_verify:
        # Before Locust: a stage without the audit queue would fail the gate only after the run.
        try:
            require_event_audit(target, gate.COUNTING_GATE)
        except NoEventAuditError as error:
            print(f"GATE FAILED: events: {error}", file=out)
            return 1
    run_id = args.run_id or uuid.uuid4().hex[:12]
    out_dir = args.out_dir or DEFAULT_REPORTS_DIR / run_id
    out_dir.mkdir(parents=True, exist_ok=True)
    stats_prefix = out_dir / "locust"
    keys_file = out_dir / "keys.jsonl"
    keys_file.unlink(missing_ok=True)

    env = dict(os.environ)
    if target.api_key:
        # Through the environment, not argv: a key on the command line is visible in `ps`.
        env[API_KEY_ENV] = target.api_key
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--only-summary",
        "--host",
        target.api_url,
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.spawn_rate),
        "--run-time",
        args.run_time,
        "--stop-timeout",
        str(STOP_TIMEOUT_S),
        # The final figures for the gate (<prefix>.json) and the per-second history for people.
        "--json-file",
        str(stats_prefix),
        "--csv",
        str(stats_prefix),
        "--run-id",
        run_id,
        "--keys-file",
        str(keys_file),
        "--duplicate-pool-size",
        str(args.duplicate_pool_size),
        "--rps-per-user",
        str(args.rps_per_user),
    ]
    print(
        f"load: {args.users} users for {args.run_time} against {target.api_url} (run {run_id}, {out_dir})",
        file=out,
        flush=True,
    )
    started = time.monotonic()
    try:
        subprocess.run(  # noqa: S603 - our own interpreter and arguments, no shell
            command, env=env, check=False, timeout=run_time_seconds(args.run_time) + LOCUST_GRACE_S
        )
    except subprocess.TimeoutExpired:
        print(f"GATE FAILED: Locust did not stop within {args.run_time} + {LOCUST_GRACE_S} s", file=out)
        return 1
    print(f"load: Locust finished in {time.monotonic() - started:.1f} s", file=out)

    gate_args = argparse.Namespace(
        stats_json=stats_prefix.with_suffix(".json"),
        keys_file=keys_file,
        target=args.target,
        report=out_dir / "gate.json",
        max_failure_ratio=args.max_failure_ratio,
        max_p95_ms=args.max_p95_ms,
        min_requests=args.min_requests,
        verify_timeout=args.verify_timeout,
        count_events=args.count_events,
        skip_verify=args.skip_verify,
    )
    return gate.run_gate(gate_args, out, target)


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))
