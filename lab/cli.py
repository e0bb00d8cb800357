"""`lab`: the operator CLI of the ingestion lab (local cloud or a deployed stage).

Exit status: 0 pass, 1 a check failed, 2 the command could not run (usage, target), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.common.names import ErrorType, FailureMode
from lab import redrive
from lab.api import ApiError
from lab.environment import export_lines, target_environment
from lab.failure_mode import (
    DEFAULT_TTL_SECONDS,
    FailureModeError,
    read_failure_mode,
    reset_failure_mode,
    set_failure_mode,
)
from lab.gamedays import run_gameday
from lab.gamedays.drills import DRILLS
from lab.gamedays.injectors import InjectorError
from lab.gamedays.report import REPORTS_DIR
from lab.local import lifecycle
from lab.send import SendError, load_run, read_keys_file, save_run, send_payloads, send_samples
from lab.smoke import run_smoke
from lab.status import stage_status
from lab.target import Target, TargetError, resolve_target
from lab.verify import verify_keys

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
ALL_DRILLS = "all"
Handler = Callable[[argparse.Namespace, "Output"], int]


class Output:
    """Readable lines on stdout, or with --json one JSON document on stdout (progress on stderr)."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def line(self, text: str) -> None:
        if not self.as_json:
            print(text, flush=True)

    def progress(self, text: str) -> None:
        # Progress goes to stderr in JSON mode so stdout stays one parseable document.
        print(text, file=sys.stderr if self.as_json else sys.stdout, flush=True)

    def result(self, data: Any, human: str | None = None) -> None:
        if self.as_json:
            print(json.dumps(data, indent=2, sort_keys=True, default=str))
        elif human:
            print(human)


# --- commands -------------------------------------------------------------------------------
def cmd_up(args: argparse.Namespace, out: Output) -> int:
    target = lifecycle.up(sample_events=args.sample_events, log=out.progress)
    out.result({"apiUrl": target.api_url, "endpointUrl": target.endpoint_url}, f"lab is up: {target.api_url}")
    return EXIT_OK


def cmd_down(args: argparse.Namespace, out: Output) -> int:
    stopped = lifecycle.down()
    out.result(
        stopped,
        "stopped: " + ", ".join(f"{k} {'yes' if v else 'was not running'}" for k, v in stopped.items()),
    )
    return EXIT_OK


def cmd_send(args: argparse.Namespace, out: Output) -> int:
    target = _target(args)
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            out.progress(f"sent {done}/{total} ({time.monotonic() - started:.1f}s)")

    if args.duplicate_of:
        original = load_run(args.duplicate_of)
        run_id = f"{args.duplicate_of}-resend-{int(time.time())}"
        sent = send_payloads(target, [event.payload for event in original], on_progress=progress)
        same = sum(1 for a, b in zip(original, sent, strict=True) if a.idempotency_key == b.idempotency_key)
        out.line(
            f"re-sent {len(sent)} payloads of run {args.duplicate_of}: {same} got the same idempotencyKey"
        )
    elif args.payload:
        run_id = f"adhoc-{int(time.time())}"
        sent = send_payloads(target, [json.loads(args.payload)] * args.count, on_progress=progress)
    else:
        run_id, sent = send_samples(target, args.count, on_progress=progress)
    path = save_run(run_id, sent)
    for event in sent:
        out.line(f"{event.idempotency_key}  {event.message_id}")
    out.result(
        {"runId": run_id, "runFile": str(path), "events": [e.to_dict() for e in sent]},
        f"run {run_id}: {len(sent)} accepted; verify with `lab verify --run-id {run_id}`",
    )
    return EXIT_OK


def cmd_failure_mode(args: argparse.Namespace, out: Output) -> int:
    target = _target(args)
    if args.action == "set":
        set_failure_mode(target, args.mode, ttl_seconds=args.ttl)
    elif args.action == "reset":
        reset_failure_mode(target, via_function=args.via_function)
    state = read_failure_mode(target)
    out.result(state.to_dict(), state.describe())
    return EXIT_OK


def cmd_redrive(args: argparse.Namespace, out: Output) -> int:
    target = _target(args)
    if args.action == "preview":
        body = redrive.preview(
            target, max_messages=args.max_messages, error_type=args.error_type, min_age_seconds=args.min_age
        )
        messages = redrive.preview_messages(body)
        for message in messages:
            out.line(
                "  ".join(
                    f"{k}={message.get(k)}"
                    for k in ("idempotencyKey", "errorType", "ageSeconds", "receiveCount", "redriveCount")
                )
            )
        out.result(body, f"{len(messages)} messages sampled (the DLQ is unchanged)")
        return EXIT_OK
    if args.action == "start":
        params = redrive.RedriveParams(
            max_messages=args.max_messages,
            filter_error_type=args.error_type,
            min_age_seconds=args.min_age,
            per_message_delay_jitter=args.jitter,
        )
        job = redrive.start(target, params)
        out.line(f"started job {job['jobId']} ({job.get('status')})")
        if not args.wait:
            out.result(job, f"follow it with `lab redrive status {job['jobId']}`")
            return EXIT_OK
        job = redrive.wait(
            target,
            job["jobId"],
            timeout_s=args.timeout,
            on_progress=lambda j: out.progress(redrive.describe(j)),
        )
    elif args.action == "status":
        job = redrive.status(target, args.job_id)
    else:
        job = redrive.cancel(target, args.job_id)
    out.result(job, redrive.describe(job))
    return EXIT_OK if job.get("status") not in ("FAILED",) else EXIT_FAIL


def cmd_env(args: argparse.Namespace, out: Output) -> int:
    env = target_environment(_target(args))
    out.result(env, export_lines(env))
    return EXIT_OK


def cmd_status(args: argparse.Namespace, out: Output) -> int:
    target = _target(args)
    snapshot = stage_status(target)
    data = snapshot.to_dict()
    data["failureMode"] = read_failure_mode(target).to_dict()
    local = lifecycle.status() if target.name == "local" else None
    if local is not None:
        data["localCloud"] = local.to_dict()
    if out.as_json:
        out.result(data)
        return EXIT_OK
    out.line(f"target {target.name}  api {target.api_url}")
    if local is not None:
        engine = "healthy" if local.engine_healthy else "NOT healthy"
        agent = "running" if local.agent_running else "NOT running"
        out.line(f"local cloud: engine {engine} at {local.endpoint_url}, metrics/alarm agent {agent}")
    out.line(read_failure_mode(target).describe())
    out.line("queues:")
    for label, queue in snapshot.queues.items():
        age = f"{queue.oldest_age_s:.0f}s" if queue.oldest_age_s is not None else "n/a"
        out.line(
            f"  {label:<10} {queue.name:<48} visible {queue.visible:>6}  in flight {queue.in_flight:>6}  "
            f"delayed {queue.delayed:>5}  oldest {age}"
        )
    out.line("alarms:")
    for alarm in snapshot.alarms:
        out.line(f"  {alarm.state:<18} {alarm.name}")
    partial = " (partial: scan stopped early)" if snapshot.records_partial else ""
    out.line(
        "records: "
        + (", ".join(f"{k} {v}" for k, v in sorted(snapshot.records_by_status.items())) or "none")
        + partial
    )
    for note in snapshot.notes:
        out.line(f"note: {note}")
    return EXIT_OK


def cmd_smoke(args: argparse.Namespace, out: Output) -> int:
    target = _target(args)
    report = run_smoke(
        target,
        timeout_s=args.timeout,
        on_check=lambda c: out.line(f"{'PASS' if c.ok else 'FAIL'}  {c.name}: {c.detail}"),
    )
    out.result(report.to_dict(), "smoke " + ("passed" if report.ok else "FAILED"))
    return EXIT_OK if report.ok else EXIT_FAIL


def cmd_verify(args: argparse.Namespace, out: Output) -> int:
    target = _target(args)
    if args.run_id:
        keys = [event.idempotency_key for event in load_run(args.run_id)]
    else:
        keys = read_keys_file(Path(args.keys_file))
    if not keys:
        out.result({"ok": False, "error": "no keys"}, "FAIL: no keys to verify")
        return EXIT_FAIL
    report = verify_keys(
        target, keys, timeout_s=args.timeout, count_events=args.count_events, on_progress=out.progress
    )
    for key in report.missing[:20]:
        out.line(f"missing       {key}")
    for key, status in list(report.not_succeeded.items())[:20]:
        out.line(f"{status:<13} {key}")
    out.result(report.to_dict(), report.summary())
    return EXIT_OK if report.ok else EXIT_FAIL


def cmd_gameday(args: argparse.Namespace, out: Output) -> int:
    target = _target(args)
    if args.name != ALL_DRILLS:
        names = [args.name]
    else:
        # With FIS, "all" means every drill FIS can drive.
        names = [name for name, spec in DRILLS.items() if args.injector != "fis" or spec.fis]
    results = []
    for name in names:
        try:
            result = run_gameday(
                target,
                name,
                events=args.events,
                timeout_s=args.timeout,
                injector=args.injector,
                report_dir=Path(args.report_dir) if args.report_dir else REPORTS_DIR,
                printer=out.progress,
            )
        except InjectorError as error:
            out.result({"ok": False, "error": str(error)}, f"refused: {error}")
            return EXIT_USAGE
        results.append(result)
        if result.outcome == "interrupted":
            break
    if len(results) == 1 and len(names) == 1:
        [result] = results
        out.result(
            {**result.report, "reportJson": str(result.json_path), "reportHtml": str(result.html_path)},
            f"gameday {result.drill}: {result.outcome}" + (f" ({result.error})" if result.error else ""),
        )
        return result.exit_code
    summary = [
        {"drill": r.drill, "outcome": r.outcome, "error": r.error, "seconds": r.report["elapsedSeconds"]}
        for r in results
    ]
    lines = [
        f"{r['outcome']:<12} {r['drill']:<20} {r['seconds']:>6.0f}s  {r['error'] or ''}" for r in summary
    ]
    out.result({"drills": summary}, "\n".join(lines))
    return max(r.exit_code for r in results)


def _target(args: argparse.Namespace) -> Target:
    return resolve_target(args.target)


# --- parser ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    # --target/--json are accepted before or after the command; the sub-level copies default to
    # SUPPRESS so they never overwrite a value given at the top level.
    top = _common_options(suppress=False)
    common = _common_options(suppress=True)
    parser = argparse.ArgumentParser(prog="lab", description=__doc__, parents=[top])
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, parents=[common])
        sub.set_defaults(handler=handler)
        return sub

    up = add("up", cmd_up, "start the local cloud and deploy the local stage (reuses a running one)")
    up.add_argument("--sample-events", type=int, default=0, help="send this many sample events once up")
    add("down", cmd_down, "stop the local cloud")
    add("env", cmd_env, "print the target as export lines (for curl, the AWS CLI, Locust, --target env)")

    send = add(
        "send", cmd_send, "send sample events through POST /events; prints idempotencyKey and messageId"
    )
    send.add_argument("--count", type=_positive, default=1)
    group = send.add_mutually_exclusive_group()
    group.add_argument("--duplicate-of", metavar="RUN_ID", help="re-send the payloads of an earlier run")
    group.add_argument("--payload", help="send this JSON body instead of generated samples")

    _add_failure_mode(add, common)
    _add_redrive(add, common)
    _add_checks(add)
    return parser


AddCommand = Callable[[str, Handler, str], argparse.ArgumentParser]


def _add_failure_mode(add: AddCommand, common: argparse.ArgumentParser) -> None:
    mode = add("failure-mode", cmd_failure_mode, "get, set (with an expiry) or reset /ingestion/failure_mode")
    mode_actions = mode.add_subparsers(dest="action", required=True, metavar="action")
    get = mode_actions.add_parser("get", help="show the stored and the effective mode", parents=[common])
    get.set_defaults(handler=cmd_failure_mode)
    set_ = mode_actions.add_parser("set", help="inject a mode for --ttl seconds", parents=[common])
    set_.add_argument("mode", choices=[m.value for m in FailureMode])
    set_.add_argument(
        "--ttl", type=_positive, default=DEFAULT_TTL_SECONDS, help="seconds (default %(default)s)"
    )
    set_.set_defaults(handler=cmd_failure_mode)
    reset = mode_actions.add_parser("reset", help="back to none", parents=[common])
    reset.add_argument("--via-function", action="store_true", help="invoke the stage's reset function")
    reset.set_defaults(handler=cmd_failure_mode)


def _add_redrive(add: AddCommand, common: argparse.ArgumentParser) -> None:
    rd = add("redrive", cmd_redrive, "preview, start, follow or cancel a DLQ redrive (through the API)")
    rd_actions = rd.add_subparsers(dest="action", required=True, metavar="action")
    error_types = [e.value for e in ErrorType]
    preview = rd_actions.add_parser(
        "preview", help="sample the DLQ without removing anything", parents=[common]
    )
    preview.add_argument("--max-messages", type=_positive, default=10)
    preview.add_argument("--error-type", choices=error_types)
    preview.add_argument("--min-age", type=int, metavar="SECONDS")
    start = rd_actions.add_parser("start", help="start a redrive job", parents=[common])
    start.add_argument("--max-messages", type=_positive, default=100)
    start.add_argument("--error-type", choices=error_types)
    start.add_argument("--min-age", type=int, metavar="SECONDS")
    start.add_argument("--jitter", type=int, default=5, metavar="SECONDS", help="per-message delay 0..900")
    start.add_argument("--wait", action="store_true", help="follow the job until it ends")
    start.add_argument("--timeout", type=float, default=600.0)
    for action in ("status", "cancel"):
        sub = rd_actions.add_parser(action, help=f"{action} a redrive job", parents=[common])
        sub.add_argument("job_id")
    for sub in rd_actions.choices.values():
        sub.set_defaults(handler=cmd_redrive)


def _add_checks(add: AddCommand) -> None:
    add("status", cmd_status, "queue depths and ages, alarm states, records by status, failure mode")
    smoke = add("smoke", cmd_smoke, "POST /events -> 202 -> SUCCEEDED; GET /redrive/preview -> 200")
    smoke.add_argument("--timeout", type=float, default=60.0)

    verify = add("verify", cmd_verify, "invariants: every key SUCCEEDED once, success events == unique keys")
    source = verify.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-id", help="a run recorded by `lab send` or a gameday")
    source.add_argument("--keys-file", help="idempotency keys, one per line")
    verify.add_argument("--timeout", type=float, default=120.0)
    verify.add_argument("--count-events", action="store_true", help="count IngestionSuccess events too")

    gameday = add("gameday", cmd_gameday, "run an automated drill; always restores failure_mode none")
    gameday.add_argument(
        "name", choices=[*DRILLS, ALL_DRILLS], help=f"a drill, or {ALL_DRILLS} (one after another)"
    )
    gameday.add_argument("--events", type=_positive, help="events to send (default per drill)")
    gameday.add_argument("--timeout", type=float, help="seconds for the whole drill (default per drill)")
    gameday.add_argument("--injector", choices=["ssm", "fis"], default="ssm", help="fis: AWS only")
    gameday.add_argument("--report-dir", help="where to write the JSON and HTML report (default reports/)")


def _common_options(*, suppress: bool) -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--target",
        default=argparse.SUPPRESS if suppress else None,
        help="local (default, or $LAB_TARGET), env (outputs from environment variables) or stage:<envName>",
    )
    options.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS if suppress else False, help="JSON on stdout"
    )
    return options


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Output(args.json)
    try:
        code: int = args.handler(args, out)
    except KeyboardInterrupt:
        out.progress("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `lab status | head`: the reader left; say nothing more (Python's documented recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (TargetError, FailureModeError) as error:
        out.result({"ok": False, "error": str(error)}, f"error: {error}")
        return EXIT_USAGE
    except (SendError, redrive.RedriveError, ApiError, ClientError, BotoCoreError) as error:
        out.result({"ok": False, "error": str(error)}, f"FAIL: {error}")
        return EXIT_FAIL
    return code


if __name__ == "__main__":
    sys.exit(main())
