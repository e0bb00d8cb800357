"""redrive-quarantine: a poison message redriven up to the stage's limit comes back each time with
its redriveCount raised; the next redrive quarantines it, never back to the main queue."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Any

from functions.common.names import FailureMode, Output, RecordStatus
from lab.gamedays.observe import take_quarantined
from lab.gamedays.runner import DrillContext
from lab.gamedays.spec import DrillSpec, UntilQuarantined
from lab.gamedays.steps import (
    dlq_depth,
    keys_of,
    main_depth,
    records,
    redrive_dlq,
    require_empty_dlq,
    send_events,
)
from stage_client import redrive

# Long enough for a message wrongly sent to the main queue to show up there.
STRAY_MESSAGE_WAIT_S = 3


def run(ctx: DrillContext) -> list[str]:
    """A poison message redriven past the limit goes to quarantine, never back to the main queue."""
    require_empty_dlq(ctx)
    quarantine_url = ctx.target.output(Output.QUARANTINE_QUEUE_URL)
    ctx.mark(
        "inject", **ctx.injector.inject(ctx, FailureMode.POISON_PAYLOAD, ttl_seconds=int(ctx.remaining()))
    )
    ctx.injector.settle(ctx, "poison_payload set")
    keys = keys_of(send_events(ctx, max(1, ctx.events)))
    for redrives in itertools.count():
        limit = dlq_holds_every_key(ctx, keys, redrives)
        moved = redrive_dlq(ctx, max_messages=len(keys), jitter_s=0).counters
        if redrives >= limit:
            ctx.check(
                moved["quarantined"] == len(keys) and moved["moved"] == 0,
                f"at the limit ({limit}) every message should be quarantined, none moved: {moved}",
            )
            break
        ctx.check(
            moved["moved"] == len(keys) and moved["quarantined"] == 0,
            f"redrive {redrives + 1} of {limit} should move every message back: {moved}",
        )
    ctx.mark("quarantined", messages=len(keys), after_redrives=redrives)
    quarantined_nowhere_else(ctx, keys)
    parked = take_quarantined(ctx, quarantine_url, set(keys))
    ctx.check(
        sorted(parked) == sorted(keys), f"the quarantine queue should hold each key once, holds {parked}"
    )
    ctx.mark("quarantine queue held the messages; removed them (drill cleanup)", keys=len(parked))
    return [
        f"a poison message was redriven {limit} times (the limit), its redriveCount counting each one",
        "the next redrive quarantined it: state QUARANTINED, neither main queue nor DLQ holds it",
        "the quarantine queue held it exactly once",
    ]


def dlq_holds_every_key(ctx: DrillContext, keys: Sequence[str], redrives: int) -> int:
    """Wait until every message is back in the DLQ, check what the preview says of each (its
    redriveCount, whether the next redrive quarantines it); returns the stage's redrive limit."""
    ctx.wait_until(
        f"every poisoned message back in the DLQ (after {redrives} redrives)",
        lambda: dlq_depth(ctx)[0] >= len(keys),
        interval_s=2,
        describe=lambda: "DLQ visible {}, in flight {}".format(*dlq_depth(ctx)),
    )
    sample = redrive.preview(ctx.target, max_messages=len(keys))
    messages = sample.messages
    # The redrive function reports the limit it enforces; the worker-side guess is a fallback.
    reported = sample.max_redrives_per_message
    limit = reported if reported is not None else ctx.guardrails.max_redrives_per_message
    if redrives == 0:
        ctx.mark("redrive limit", maxRedrivesPerMessage=limit)
    counts = [redrive_count(m) for m in messages]
    ctx.mark("messages in the DLQ", redrives=redrives, redriveCounts=counts)
    ctx.check(
        len(counts) == len(keys) and all(count == redrives for count in counts),
        f"after {redrives} redrives every message should carry redriveCount {redrives}, got {counts}",
    )
    ctx.check(
        all(bool(m.get("wouldQuarantine")) == (redrives >= limit) for m in messages),
        f"preview's wouldQuarantine disagrees with the limit {limit}: {messages}",
    )
    return limit


def redrive_count(message: dict[str, Any]) -> int | None:
    """The preview's redriveCount of one message; None when the preview does not say."""
    value = message.get("redriveCount")
    return None if value is None else int(value)


def quarantined_nowhere_else(ctx: DrillContext, keys: Sequence[str]) -> None:
    found = records(ctx, keys)
    statuses = {k: r.get("status") for k, r in found.items()}
    ctx.check(
        len(statuses) == len(keys) and all(s == RecordStatus.QUARANTINED.value for s in statuses.values()),
        f"every quarantined key should be recorded QUARANTINED: {statuses}",
    )
    time.sleep(STRAY_MESSAGE_WAIT_S)
    ctx.check(main_depth(ctx) == 0, "a quarantined message went back to the main queue")
    ctx.check(sum(dlq_depth(ctx)) == 0, "a quarantined message is still in the DLQ")


SPEC = DrillSpec(
    run=run,
    summary="redriven past the limit -> quarantine, not the main queue",
    default_events=1,
    default_timeout_s=600,
    dlq_trips=UntilQuarantined(),
)
