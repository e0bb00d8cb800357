"""The automated gamedays, one module per drill: each injects a fault, asserts what it can observe,
fixes and verifies. Every step either observes its claim through the stage's own APIs (queues,
table, alarms, the event audit queue, the redrive API) or fails with what it last saw; none passes
by default.

A new drill: a module here with `run(ctx) -> claims` and its SPEC, one line in DRILLS, and its
write-up in ops/gamedays/.
"""

from __future__ import annotations

from lab.gamedays.drills import (
    duplicate_submit,
    failure_mode_expiry,
    poison_pill,
    random_fail_p30,
    redrive_quarantine,
    slow_downstream,
)
from lab.gamedays.spec import DrillSpec

DRILLS: dict[str, DrillSpec] = {
    "poison-pill": poison_pill.SPEC,
    "slow-downstream": slow_downstream.SPEC,
    "random-fail-p30": random_fail_p30.SPEC,
    "duplicate-submit": duplicate_submit.SPEC,
    "failure-mode-expiry": failure_mode_expiry.SPEC,
    "redrive-quarantine": redrive_quarantine.SPEC,
}

__all__ = ["DRILLS", "DrillSpec"]
