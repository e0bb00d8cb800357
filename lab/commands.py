"""The `lab` commands: each reads its arguments, calls the stage client, gamedays or harness, and
prints through Output (readable lines, or one JSON document with --json). Returns the exit status."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from lab.gamedays import GamedayResult, NoEventAuditError, refuse_without_event_audit, run_gameday
from lab.gamedays.drills import DRILLS
from lab.gamedays.injectors import InjectorError, injector_type
from lab.gamedays.report import REPORTS_DIR
from lab.harness import lifecycle
from lab.harness.dashboard import ensure_dashboard, stop_dashboard
from lab.localcloud.dashboard.timerange import CHOICES
from lab.runs import load_run, read_keys_file, save_run
from stage_client import redrive
from stage_client.dashboard import console_url, dashboard_name
from stage_client.environment import export_lines, target_environment
from stage_client.failure_mode import read_failure_mode, reset_failure_mode, set_failure_mode
from stage_client.send import send_payloads, send_samples
from stage_client.smoke import run_smoke
from stage_client.status import StageStatus, stage_status
from stage_client.target import Target, resolve_target
from stage_client.verify import verify_keys

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
ALL_DRILLS = "all"


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
        sample = redrive.preview(
            target, max_messages=args.max_messages, error_type=args.error_type, min_age_seconds=args.min_age
        )
        for message in sample.messages:
            out.line(
                "  ".join(
                    f"{k}={message.get(k)}"
                    for k in ("idempotencyKey", "errorType", "ageSeconds", "receiveCount", "redriveCount")
                )
            )
        out.result(sample.body, f"{len(sample.messages)} messages sampled (the DLQ is unchanged)")
        return EXIT_OK
    if args.action == "start":
        params = redrive.RedriveParams(
            max_messages=args.max_messages,
            filter_error_type=args.error_type,
            min_age_seconds=args.min_age,
            per_message_delay_jitter=args.jitter,
        )
        job = redrive.start(target, params)
        out.line(f"started job {job.job_id} ({job.status})")
        if not args.wait:
            out.result(job.body, f"follow it with `lab redrive status {job.job_id}`")
            return EXIT_OK
        job = redrive.wait(
            target, job.job_id, timeout_s=args.timeout, on_progress=lambda j: out.progress(j.describe())
        )
    elif args.action == "status":
        job = redrive.status(target, args.job_id)
    else:
        job = redrive.cancel(target, args.job_id)
    out.result(job.body, job.describe())
    return EXIT_FAIL if job.status == "FAILED" else EXIT_OK


def cmd_env(args: argparse.Namespace, out: Output) -> int:
    env = target_environment(_target(args))
    out.result(env, export_lines(env))
    return EXIT_OK


def cmd_status(args: argparse.Namespace, out: Output) -> int:
    target = _target(args)
    snapshot = stage_status(target)
    failure_mode = read_failure_mode(target)
    local = lifecycle.status() if target.name == "local" else None
    if out.as_json:
        data = snapshot.to_dict()
        data["failureMode"] = failure_mode.to_dict()
        if local is not None:
            data["localCloud"] = local.to_dict()
        out.result(data)
        return EXIT_OK
    out.line(f"target {target.name}  api {target.api_url}")
    if local is not None:
        engine = "healthy" if local.engine_healthy else "NOT healthy"
        agent = "running" if local.agent_running else "NOT running"
        out.line(f"local cloud: engine {engine} at {local.endpoint_url}, metrics/alarm agent {agent}")
        out.line(f"dashboard: {local.dashboard_url or 'not running (lab dashboard starts it)'}")
    out.line(failure_mode.describe())
    for text in status_lines(snapshot):
        out.line(text)
    return EXIT_OK


def status_lines(snapshot: StageStatus) -> list[str]:
    """Queues, alarms, records and notes of a snapshot, as `lab status` prints them."""
    lines = ["queues:"]
    for label, queue in snapshot.queues.items():
        age = f"{queue.oldest_age_s:.0f}s" if queue.oldest_age_s is not None else "n/a"
        lines.append(
            f"  {label:<10} {queue.name:<48} visible {queue.visible:>6}  in flight {queue.in_flight:>6}  "
            f"delayed {queue.delayed:>5}  oldest {age}"
        )
    lines.append("alarms:")
    lines.extend(f"  {alarm.state:<18} {alarm.name}" for alarm in snapshot.alarms)
    partial = " (partial: scan stopped early)" if snapshot.records_partial else ""
    lines.append(
        "records: "
        + (", ".join(f"{k} {v}" for k, v in sorted(snapshot.records_by_status.items())) or "none")
        + partial
    )
    lines.extend(f"note: {note}" for note in snapshot.notes)
    return lines


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
    names = _drill_names(args.name, args.injector)
    try:
        refuse_without_event_audit(target, names)
    except NoEventAuditError as error:
        out.result({"ok": False, "error": str(error)}, f"refused: {error}")
        return EXIT_USAGE
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
        return _one_gameday(results[0], out)
    return _many_gamedays(results, out)


def _drill_names(name: str, injector: str) -> list[str]:
    """One drill, or for "all" every drill the chosen injector can drive."""
    if name != ALL_DRILLS:
        return [name]
    kind = injector_type(injector)
    return [drill for drill, spec in DRILLS.items() if kind.can_drive(spec)]


def _many_gamedays(results: list[GamedayResult], out: Output) -> int:
    summary = [
        {"drill": r.drill, "outcome": r.outcome, "error": r.error, "seconds": r.report["elapsedSeconds"]}
        for r in results
    ]
    lines = [
        f"{r['outcome']:<12} {r['drill']:<20} {r['seconds']:>6.0f}s  {r['error'] or ''}" for r in summary
    ]
    out.result({"drills": summary}, "\n".join(lines))
    return max(r.exit_code for r in results)


def _one_gameday(result: GamedayResult, out: Output) -> int:
    out.result(
        {**result.report, "reportJson": str(result.json_path), "reportHtml": str(result.html_path)},
        f"gameday {result.drill}: {result.outcome}" + (f" ({result.error})" if result.error else ""),
    )
    return result.exit_code


def cmd_dashboard(args: argparse.Namespace, out: Output) -> int:
    """Local: the page on 127.0.0.1 (started if needed); a stage on AWS: the console URL."""
    if bool(args.start) != bool(args.end):
        out.result(
            {"ok": False, "error": "--start and --end go together"}, "error: --start and --end go together"
        )
        return EXIT_USAGE
    start, end = (args.start, args.end) if args.start else (CHOICES[args.range], None)
    target = _target(args)
    if not target.is_local:
        url = console_url(target, start, end)
        out.result({"target": target.name, "dashboard": dashboard_name(target), "url": url}, url)
        return EXIT_OK
    if args.stop:
        stopped = stop_dashboard()
        out.result(
            {"stopped": stopped}, "dashboard page stopped" if stopped else "no dashboard page was running"
        )
        return EXIT_OK
    page = ensure_dashboard(port=args.port, log=out.progress)
    url = page.url_for(start, end)
    out.result(
        {"target": target.name, "dashboard": page.dashboard, "url": url, "pid": page.pid},
        f"{url}\n(the local cloud's {page.dashboard}; stop it with `lab dashboard --stop` or make lab-down)",
    )
    return EXIT_OK


def _target(args: argparse.Namespace) -> Target:
    return resolve_target(args.target)
