"""redrive-quarantine: a poison message redriven up to the stage's limit comes back each time with
its redriveCount raised; the next redrive quarantines it, never back to the main queue.

At-least-once delivery may keep a copy of a DLQ message the redrive deleted (SQS developer guide,
"At-least-once delivery"): such a copy carries the redriveCount it had then, so each key is judged
by its newest message, and copies are swept (redriven until they too are quarantined) before the
final checks.
"""

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
    copies = 0
    for redrives in itertools.count():
        sample, limit = dlq_holds_every_key(ctx, keys, redrives)
        stale = [m for m in sample if (redrive_count(m) or 0) < redrives]
        copies += len(stale)
        moved = redrive_dlq(ctx, max_messages=len(sample), jitter_s=0).counters
        if redrives >= limit:
            ctx.check(
                moved["quarantined"] == len(keys) and moved["moved"] <= len(stale),
                f"at the limit ({limit}) every key's message should be quarantined, none moved but older "
                f"copies ({len(stale)}): {moved}",
            )
            break
        ctx.check(
            moved["moved"] >= len(keys) and moved["quarantined"] == 0,
            f"redrive {redrives + 1} of {limit} should move every message back: {moved}",
        )
    ctx.mark("quarantined", messages=len(keys), after_redrives=redrives, older_copies=copies)
    sweep_copies(ctx)
    quarantined_nowhere_else(ctx, keys)
    parked = take_quarantined(ctx, quarantine_url, set(keys))
    ctx.check(set(parked) == set(keys), f"the quarantine queue should hold every key, holds {parked}")
    ctx.mark("quarantine queue held the messages; removed them (drill cleanup)", messages=len(parked))
    return [
        f"a poison message was redriven {limit} times (the limit), its redriveCount counting each one",
        "the next redrive quarantined it: state QUARANTINED, neither main queue nor DLQ holds it",
        f"the quarantine queue held it ({len(parked)} messages for {len(keys)} keys: copies of one "
        "message are the queue's at-least-once delivery)",
    ]


def dlq_holds_every_key(
    ctx: DrillContext, keys: Sequence[str], redrives: int
) -> tuple[list[dict[str, Any]], int]:
    """Wait until every key's newest DLQ message carries redriveCount `redrives`, check what the
    preview says of each message (whether the next redrive quarantines it); returns the sample and
    the stage's redrive limit."""
    last: list[dict[str, Any]] = []

    def every_key_back() -> list[dict[str, Any]] | None:
        visible = dlq_depth(ctx)[0]
        if visible < len(keys):
            return None
        last[:] = redrive.preview(ctx.target, max_messages=visible).messages
        newest = newest_counts(last)
        return list(last) if all(newest.get(k) == redrives for k in keys) else None

    sample = ctx.wait_until(
        f"every poisoned message back in the DLQ with redriveCount {redrives}",
        every_key_back,
        interval_s=2,
        describe=lambda: (
            f"DLQ visible {dlq_depth(ctx)[0]}, newest redriveCount per key {newest_counts(last)}"
        ),
    )
    reported = redrive.preview(ctx.target, max_messages=1).max_redrives_per_message
    # The redrive function reports the limit it enforces; the worker-side guess is a fallback.
    limit = reported if reported is not None else ctx.guardrails.max_redrives_per_message
    if redrives == 0:
        ctx.mark("redrive limit", maxRedrivesPerMessage=limit)
    counts = [redrive_count(m) for m in sample]
    ctx.mark("messages in the DLQ", redrives=redrives, redriveCounts=counts)
    ctx.check(
        all(bool(m.get("wouldQuarantine")) == ((redrive_count(m) or 0) >= limit) for m in sample),
        f"preview's wouldQuarantine disagrees with the limit {limit}: {sample}",
    )
    return sample, limit


def newest_counts(messages: list[dict[str, Any]]) -> dict[str, int]:
    """The highest redriveCount each key's DLQ messages carry."""
    newest: dict[str, int] = {}
    for message in messages:
        key, count = message.get("idempotencyKey"), redrive_count(message)
        if key and count is not None:
            newest[str(key)] = max(count, newest.get(str(key), -1))
    return newest


def redrive_count(message: dict[str, Any]) -> int | None:
    """The preview's redriveCount of one message; None when the preview does not say."""
    value = message.get("redriveCount")
    return None if value is None else int(value)


def sweep_copies(ctx: DrillContext) -> None:
    """Redrive whatever comes back to the DLQ (older copies travel their own trips) until neither
    queue holds anything: each copy ends quarantined too, by its own redriveCount."""

    def swept() -> bool:
        visible, hidden = dlq_depth(ctx)
        if visible + hidden + main_depth(ctx) == 0:
            return True
        if visible and not hidden:
            ctx.mark("the DLQ holds copies again; redriving them", dlq_visible=visible)
            redrive_dlq(ctx, max_messages=visible, jitter_s=0)
        return False

    ctx.wait_until(
        "the main queue and the DLQ to hold no message",
        swept,
        interval_s=2,
        describe=lambda: f"DLQ {dlq_depth(ctx)}, main queue {main_depth(ctx)}",
    )


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
