"""duplicate-submit: ingest queues every event twice; the worker keeps one record and one
IngestionSuccess event per key and counts the second copies (and any copy the queue itself
redelivered: at-least-once delivery)."""

from __future__ import annotations

from functions.common.names import FailureMode, MetricName, Output
from lab.gamedays.observe import DuplicateDetections, PlatformDuplicates, WorkerCounters, table_count
from lab.gamedays.runner import DrillContext
from lab.gamedays.spec import DrillSpec
from lab.gamedays.steps import keys_of, recover, send_events, verify_exactly_once


def run(ctx: DrillContext) -> list[str]:
    """Every event queued twice -> exactly N records and N IngestionSuccess events."""
    before = table_count(ctx)
    counters = WorkerCounters(ctx)
    detections = DuplicateDetections(ctx)
    platform = PlatformDuplicates(ctx, ctx.target.output(Output.QUEUE_NAME))
    ctx.mark(
        "inject", **ctx.injector.inject(ctx, FailureMode.DUPLICATE_SUBMIT, ttl_seconds=int(ctx.remaining()))
    )
    ctx.injector.settle(ctx, "duplicate_submit set")
    sent = send_events(ctx, ctx.events)
    keys = keys_of(sent)
    doubled = sum(1 for e in sent if e.duplicate_message_id and e.duplicate_message_id != e.message_id)
    ctx.mark("ingest queued each event twice", duplicated=doubled, events=len(sent))
    ctx.check(
        doubled == len(sent),
        f"only {doubled}/{len(sent)} events were queued twice: duplicate_submit was not in effect",
    )
    ctx.check(len(set(keys)) == len(keys), "the sample payloads were not unique")
    ctx.mark("fix", **ctx.injector.restore(ctx))
    recover(ctx, keys)
    verified = verify_exactly_once(ctx, keys, what=f"{len(keys)} unique payloads:")
    after = table_count(ctx)
    ctx.mark("table records added", before=before, after=after)
    flagged = detections.wait_for_every(set(keys))
    lines = sum(len(ids) for ids in flagged.values())
    allowed = platform.allowance(len(keys))
    ctx.mark(
        "worker flagged the second copies",
        keys=len(flagged),
        lines=lines,
        platformDuplicates=allowed,
        platformDuplicatesRecorded=platform.recorded,
    )
    # One line per key for its second copy; any more is a copy the queue delivered again, which only
    # the queue's own duplicate deliveries may explain: more means the worker handed back messages
    # it had settled (a whole batch failed, or an invocation timed out).
    ctx.check(
        lines - len(keys) <= allowed,
        f"the worker flagged {lines} duplicates of {len(keys)} keys sent twice: {lines - len(keys)} "
        f"more than one per key, beyond the {allowed} duplicate deliveries the queue made",
    )
    duplicates = counters.wait_for(MetricName.DUPLICATES_DETECTED, len(keys))
    ctx.mark("worker detected the second copies", DuplicatesDetected=duplicates)
    ctx.check(
        after - before == len(keys),
        f"the table grew by {after - before} records for {len(keys)} unique payloads sent twice "
        "(the drill assumes nobody else writes to the stage meanwhile)",
    )
    return [
        f"{doubled} events were queued twice by ingest",
        f"exactly {len(keys)} records, all SUCCEEDED (table grew by {after - before})",
        f"exactly {verified['success_events']} IngestionSuccess events",
        f"the worker flagged the second copy of every key ({lines} lines, {lines - len(keys)} for copies "
        f"the queue delivered again, within its {allowed} duplicate deliveries) and wrote nothing for them; "
        f"its DuplicatesDetected metric rose by {duplicates:.0f}",
    ]


SPEC = DrillSpec(
    run=run,
    summary="every event queued twice -> deduplicated",
    default_events=20,
    default_timeout_s=120,
    counts_events=True,
)
