"""`python -m lab.rehearsal hook | execute`: the entry points git and the rehearsal itself start
(the hook of the `lab` remote; an execution's own process). People use `lab pipeline ...`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lab.harness.paths import StateDir
from lab.localcloud.codepipeline.execution import ExecutionRecord
from lab.rehearsal import runner
from lab.rehearsal.hook import run_hook
from lab.rehearsal.paths import RehearsalDir
from lab.rehearsal.report import write_run_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.rehearsal", description=__doc__)
    parser.add_argument("command", choices=("hook", "execute"))
    parser.add_argument("execution", nargs="?")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--reports-dir", type=Path, required=True)
    parser.add_argument("--approve", action="store_true")
    args = parser.parse_args(argv)
    rdir = RehearsalDir(StateDir(args.state_dir), args.reports_dir)
    if args.command == "hook":
        return run_hook(rdir, sys.stdin.read().splitlines(), lambda text: print(text, flush=True))

    def record(done: ExecutionRecord) -> None:
        report = write_run_report(done, rdir.root, rdir.reports)
        print(f"{done.id} {done.status}: {report.html_path}", flush=True)

    final = runner.execute(rdir, args.execution, approve=args.approve, on_record=record)
    return 0 if final.status == "Succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
