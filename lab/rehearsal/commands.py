"""`lab pipeline init | run | status | approve | reject | stop | logs | budgets`: the rehearsal's commands.

Each reads its arguments, acts through lab.rehearsal and prints through the `lab` CLI's Output;
it returns the exit status (0 pass, 1 the run failed, 2 it could not run).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from lab.localcloud.codepipeline.execution import WAITING, ExecutionRecord, PipelineHome
from lab.rehearsal import runner
from lab.rehearsal.follow import Follower
from lab.rehearsal.git import GitError, git
from lab.rehearsal.hook import APPROVE_ENV, FOLLOW_ENV, watched_branch
from lab.rehearsal.paths import RehearsalDir
from lab.rehearsal.profile import REMOTE_NAME
from lab.rehearsal.report import write_run_report
from lab.rehearsal.setup import SetupError, init, refresh_smoke_token
from stage_client.target import REPO_ROOT

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
APPROVE_VARIABLE = "APPROVE"  # `make pipeline APPROVE=1`


class Out:
    """What the commands need of lab.commands.Output (kept structural: no import cycle)."""

    def line(self, text: str) -> None: ...
    def progress(self, text: str) -> None: ...
    def result(self, data: Any, human: str | None = None) -> None: ...


def rehearsal_dir(args: argparse.Namespace) -> RehearsalDir:
    default = RehearsalDir.default()
    reports = Path(args.reports_dir) if getattr(args, "reports_dir", None) else default.reports
    return RehearsalDir(default.state, reports)


def _execution(home: PipelineHome, wanted: str | None) -> ExecutionRecord:
    if wanted:
        return home.load(wanted)
    record = home.latest()
    if record is None:
        raise KeyError("no execution yet: `git push lab main` or `lab pipeline run`")
    return record


def cmd_init(args: argparse.Namespace, out: Out) -> int:
    setup = init(rehearsal_dir(args), log=out.progress)
    accounts = setup.accounts
    out.result(
        setup.to_json() | {"password": "(local test user)"},
        f"local pipeline {setup.pipeline_name} ready: accounts pipeline {accounts.pipeline}, "
        f"dev {accounts.dev}, prod {accounts.prod}; push with `git push {REMOTE_NAME} {setup.branch}`",
    )
    return EXIT_OK


def _approve_unattended(args: argparse.Namespace) -> bool:
    return bool(args.approve) or os.environ.get(APPROVE_VARIABLE, "").lower() in ("1", "true", "yes")


def _push(rdir: RehearsalDir, branch: str, approve: bool, out: Out) -> str:
    """Push HEAD to the watched branch of the lab remote; the commit pushed."""
    commit = git("rev-parse", "HEAD", cwd=REPO_ROOT)
    if git("status", "--porcelain", "--untracked-files=no", cwd=REPO_ROOT):
        out.progress("note: uncommitted changes are not rehearsed (the pipeline runs the committed HEAD)")
    # The hook only starts the run (this command follows it) and learns whether to approve.
    env = {FOLLOW_ENV: "0", APPROVE_ENV: "1" if approve else "0"}
    git("push", "--force", REMOTE_NAME, f"HEAD:refs/heads/{branch}", cwd=REPO_ROOT, env=env)
    return commit


def _prompt(record: ExecutionRecord, stage: str, action: str) -> str | None:
    question = (
        f"\n{stage}/{action} waits for approval ({record.revision.get('commit', '')[:10]}): "
        "[a]pprove, [r]eject, or Enter to decide later (`lab pipeline approve|reject`): "
    )
    answer = input(question).strip().lower()
    return {"a": "approve", "approve": "approve", "r": "reject", "reject": "reject"}.get(answer)


def cmd_run(args: argparse.Namespace, out: Out) -> int:
    """Rehearse the committed HEAD: push it to the lab remote and follow the run it starts."""
    rdir = rehearsal_dir(args)
    approve = _approve_unattended(args)
    began, wall = time.monotonic(), time.time()
    init(rdir, log=out.progress)
    info, setup = runner.current(rdir)
    branch = watched_branch(rdir)
    commit = _push(rdir, branch, approve, out)
    started = [
        r for r in rdir.home.executions() if r.started_at >= wall and r.revision.get("commit") == commit
    ]
    if started:
        record = started[-1]
    else:
        # The branch already pointed at HEAD: nothing was pushed, so release the change by hand.
        refresh_smoke_token(info, setup)
        record = runner.start(
            rdir, setup, commit, trigger=runner.TRIGGER_MANUAL, detail="lab pipeline run (release change)"
        )
        runner.spawn(rdir, record.id, approve=approve)
    out.progress(f"execution {record.id} of {commit[:10]} (approval: {'unattended' if approve else 'asked'})")
    interactive = sys.stdin.isatty() and not approve
    final = Follower(rdir.home, out.progress).follow(record.id, prompt=_prompt if interactive else None)
    elapsed = time.monotonic() - began
    report = write_run_report(final, rdir.root, rdir.reports)
    minutes, seconds = divmod(round(elapsed), 60)
    summary = f"rehearsal {final.status} in {minutes} min {seconds:02d} s (wall time on this machine)"
    if not final.finished:
        summary = f"{final.id} is waiting for approval: `lab pipeline approve` or `lab pipeline reject`"
    out.result(
        {
            "id": final.id,
            "status": final.status,
            "wallSeconds": round(elapsed, 1),
            "report": str(report.html_path),
        },
        f"{summary}\nrecord: {report.json_path}\n        {report.html_path}",
    )
    return EXIT_OK if final.status == "Succeeded" else EXIT_FAIL


def status_lines(record: ExecutionRecord) -> list[str]:
    lines = [
        f"execution {record.id}: {record.status} ({record.seconds:.0f} s) {record.status_reason}".rstrip(),
        f"  commit {record.revision.get('commit', '')[:10]} {record.revision.get('message', '')}",
        f"  trigger {record.trigger.get('kind')}: {record.trigger.get('detail', '')}",
    ]
    for stage in record.stages:
        lines.append(f"  {stage.name:<16} {stage.status}")
        for action in (a for a in record.actions if a.stage == stage.name):
            took = f"{action.seconds:6.0f} s" if action.seconds is not None else " " * 8
            detail = action.error or action.summary
            lines.append(f"    {action.name:<38} {action.status:<11} {took}  {detail}".rstrip())
    return lines


def cmd_status(args: argparse.Namespace, out: Out) -> int:
    rdir = rehearsal_dir(args)
    record = _execution(rdir.home, args.execution)
    report = write_run_report(record, rdir.root, rdir.reports)
    out.result(
        record.to_json() | {"report": str(report.html_path)},
        "\n".join([*status_lines(record), f"  record: {report.html_path}"]),
    )
    return EXIT_OK


def _waiting(home: PipelineHome, wanted: str | None) -> tuple[ExecutionRecord, str, str]:
    record = _execution(home, wanted)
    for action in record.actions:
        if action.status == WAITING:
            return record, action.stage, action.name
    raise KeyError(f"execution {record.id} waits for no approval (it is {record.status})")


def cmd_answer(args: argparse.Namespace, out: Out) -> int:
    """approve / reject the approval an execution waits for."""
    rdir = rehearsal_dir(args)
    record, stage, action = _waiting(rdir.home, args.execution)
    result = "Approved" if args.pipeline_action == "approve" else "Rejected"
    by = os.environ.get("USER", "someone")
    rdir.home.answer(
        record.id, f"approval.{stage}.{action}", result=result, by=by, summary=args.summary or ""
    )
    out.result(
        {"id": record.id, "stage": stage, "action": action, "result": result},
        f"{stage}/{action} of {record.id}: {result}",
    )
    return EXIT_OK


def cmd_stop(args: argparse.Namespace, out: Out) -> int:
    rdir = rehearsal_dir(args)
    record = _execution(rdir.home, args.execution)
    rdir.home.answer(record.id, "stop", abandon=bool(args.abandon), by=os.environ.get("USER", "someone"))
    mode = "stop and abandon" if args.abandon else "stop and wait"
    out.result({"id": record.id, "abandon": bool(args.abandon)}, f"{record.id}: {mode} requested")
    return EXIT_OK


def cmd_logs(args: argparse.Namespace, out: Out) -> int:
    rdir = rehearsal_dir(args)
    record = _execution(rdir.home, args.execution)
    chosen = [
        a
        for a in record.actions
        if a.log and (not args.action or args.action in (f"{a.stage}.{a.name}", a.name))
    ]
    if not chosen:
        out.result({"error": "no such action log"}, f"no log for {args.action!r} in {record.id}")
        return EXIT_USAGE
    for action in chosen:
        out.line(f"===== {action.stage}/{action.name} ({action.status}) =====")
        out.line((rdir.root / str(action.log)).read_text(errors="replace"))
    return EXIT_OK


def cmd_budgets(args: argparse.Namespace, out: Out) -> int:
    """Each post-deploy step's worst case against its CodeBuild timeout, from a synthesized assembly."""
    from lab.localcloud.codepipeline.assembly import load_pipeline  # noqa: PLC0415 - only this command
    from lab.rehearsal.budgets import budget_table, step_budgets  # noqa: PLC0415
    from lab.rehearsal.profile import PIPELINE_STACK_ID  # noqa: PLC0415

    assembly = Path(args.assembly)
    if not (assembly / "manifest.json").exists():
        out.result(
            {"error": f"no cloud assembly in {assembly}"},
            f"no cloud assembly in {assembly}: run `make synth`",
        )
        return EXIT_USAGE
    budgets = step_budgets(load_pipeline(assembly, PIPELINE_STACK_ID))
    data = [
        {"stage": b.stage, "step": b.step, "worstCaseSeconds": b.worst_case_s, "timeoutSeconds": b.timeout_s}
        for b in budgets
    ]
    out.result(data, budget_table(budgets))
    return EXIT_OK if all(b.fits for b in budgets) else EXIT_FAIL


def add_pipeline_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """`lab pipeline ...` under the `lab` CLI (lab/cli.py)."""
    pipeline = commands.add_parser(
        "pipeline", help="rehearse the delivery pipeline on the local cloud", parents=[common]
    )
    actions = pipeline.add_subparsers(dest="pipeline_action", required=True, metavar="action")

    def add(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text, parents=[common])
        sub.add_argument("--reports-dir", help="where run records go (default reports/)")
        sub.set_defaults(handler=handler)
        return sub

    add("init", cmd_init, "bootstrap the three local accounts, set up the lab remote, deploy the pipeline")
    run = add("run", cmd_run, "push the committed HEAD to the lab remote and follow the run it starts")
    run.add_argument("--approve", action="store_true", help="approve prod without asking (also APPROVE=1)")
    for name, handler, text in (
        ("status", cmd_status, "the last run (or --execution ID), stage by stage"),
        ("approve", cmd_answer, "approve the approval a run waits for"),
        ("reject", cmd_answer, "reject it: the run ends before prod"),
        ("stop", cmd_stop, "stop a run (in-progress actions finish; --abandon stops them too)"),
        ("logs", cmd_logs, "an action's log (STAGE.ACTION or ACTION), all by default"),
    ):
        sub = add(name, handler, text)
        sub.add_argument("--execution", help="an execution id (default: the last)")
        if name in ("approve", "reject"):
            sub.add_argument("--summary", help="why (recorded with the answer)")
        if name == "stop":
            sub.add_argument("--abandon", action="store_true")
        if name == "logs":
            sub.add_argument("action", nargs="?")
    budgets = add(
        "budgets", cmd_budgets, "each post-deploy step's worst case against its timeout (dev, prod)"
    )
    budgets.add_argument("--assembly", default="cdk.out", help="a synthesized cloud assembly (make synth)")


HANDLED_ERRORS = (runner.NotSetUp, SetupError, GitError, KeyError)
