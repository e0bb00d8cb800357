"""Automated gamedays (lab gameday <name>): run one drill, always restore, write its report."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lab.gamedays.dashboard_link import dashboard_link
from lab.gamedays.drills import DRILLS
from lab.gamedays.injectors import InjectorError, injector_type
from lab.gamedays.report import REPORTS_DIR, write_report
from lab.gamedays.runner import (
    DrillContext,
    DrillFailed,
    DrillInterrupted,
    Sampler,
    entry_dicts,
    restore_on_exit,
)
from lab.gamedays.spec import DrillSpec, stage_timing
from stage_client.api import ApiError
from stage_client.audit import NoEventAuditError, has_event_audit, require_event_audit
from stage_client.failure_mode import stage_guardrails
from stage_client.target import Target

EXIT_CODES = {"passed": 0, "failed": 1, "error": 1, "interrupted": 130}


@dataclass(frozen=True)
class GamedayResult:
    drill: str
    outcome: str
    error: str | None
    report: dict[str, Any]
    json_path: Path
    html_path: Path

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]


def run_gameday(
    target: Target,
    name: str,
    *,
    events: int | None = None,
    timeout_s: float | None = None,
    injector: str = "ssm",
    report_dir: Path = REPORTS_DIR,
    printer: Callable[[str], None] = print,
    drills: dict[str, DrillSpec] = DRILLS,
) -> GamedayResult:
    """Run drill `name`; raises InjectorError before touching anything when the injector cannot work,
    NoEventAuditError when the drill counts events and the stage has no event audit queue."""
    spec = drills[name]
    kind = injector_type(injector)
    if not kind.can_drive(spec):
        drivable = ", ".join(n for n, s in drills.items() if kind.can_drive(s))
        raise InjectorError(f"{name} has no {kind.label} experiment; {kind.label} drives: {drivable}")
    chosen = kind.for_target(target)
    refuse_without_event_audit(target, [name], drills)
    guardrails = stage_guardrails(target)
    if timeout_s is None:
        timeout_s = spec.budget_s(stage_timing(target), guardrails.max_redrives_per_message)
    ctx = DrillContext(
        target=target,
        name=name,
        events=events if events is not None else spec.default_events,
        timeout_s=timeout_s,
        injector=chosen,
        guardrails=guardrails,
        printer=printer,
    )
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    printer(
        f"gameday {name} on {target.name} ({spec.summary}); injector {injector}, {ctx.events} events,"
        f" time budget {ctx.timeout_s:.0f}s"
    )
    outcome, error, claims = "passed", None, []
    try:
        with Sampler(ctx), restore_on_exit(ctx):
            claims = spec.run(ctx)
    except DrillFailed as failure:
        outcome, error = "failed", str(failure)
    except DrillInterrupted as interrupt:
        outcome, error = "interrupted", f"interrupted by {interrupt}"
    except (
        ClientError,
        BotoCoreError,
        ApiError,
        InjectorError,
        RuntimeError,
        KeyError,
        ValueError,
    ) as failure:
        outcome, error = "error", f"{type(failure).__name__}: {failure}"
    if ctx.facts.get("restored") is False and outcome == "passed":
        outcome, error = "failed", "failure_mode could not be restored to none"
    if error:
        ctx.mark(f"{outcome.upper()}: {error}")
    timeline, samples = entry_dicts(ctx)
    report = {
        "drill": name,
        "target": target.name,
        "injector": injector,
        "events": ctx.events,
        "startedAt": started_at,
        "elapsedSeconds": round(ctx.elapsed(), 1),
        "outcome": outcome,
        "error": error,
        "assertions": claims,
        "guardrails": ctx.guardrails.__dict__,
        "facts": ctx.facts,
        "timeline": timeline,
        "samples": samples,
        "finishedAt": datetime.fromtimestamp(time.time(), UTC).isoformat(timespec="seconds"),
        "dashboard": dashboard_link(target, ctx.started_wall, time.time()),
    }
    json_path, html_path = write_report(report, report_dir)
    printer(f"{outcome.upper()} in {ctx.elapsed():.0f}s; report {json_path} and {html_path}")
    return GamedayResult(name, outcome, error, report, json_path, html_path)


def refuse_without_event_audit(
    target: Target, names: list[str], drills: dict[str, DrillSpec] = DRILLS
) -> None:
    """NoEventAuditError, before anything runs, when one of these drills counts events and the stage
    deploys no event audit queue (stage key eventAudit false)."""
    counting = [name for name in names if drills[name].counts_events]
    if counting and not has_event_audit(target):
        require_event_audit(target, f"gameday {', '.join(counting)}")


__all__ = [
    "DRILLS",
    "GamedayResult",
    "InjectorError",
    "NoEventAuditError",
    "refuse_without_event_audit",
    "run_gameday",
]
