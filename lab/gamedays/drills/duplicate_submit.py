"""duplicate-submit: ingest queues every event twice; the worker keeps one record and one
IngestionSuccess event per key and counts the second copies (and any copy the queue itself
redelivered: at-least-once delivery)."""

from __future__ import annotations

from functions.common.names import FailureMode, MetricName, Output
from lab.gamedays.observe import PlatformDuplicates, WorkerCounters, table_count
from lab.gamedays.runner import DrillContext
from lab.gamedays.spec import DrillSpec
from lab.gamedays.steps import keys_of, recover, send_events, verify_exactly_once


def run(ctx: DrillContext) -> list[str]:
    """Every event queued twice -> exactly N records and N IngestionSuccess events."""
    before = table_count(ctx)
    counters = WorkerCounters(ctx)
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
    duplicates = counters.wait_for(MetricName.DUPLICATES_DETECTED, len(keys))
    redelivered = platform.allowance(len(keys))
    ctx.mark(
        "worker detected the second copies", DuplicatesDetected=duplicates, platformDuplicates=redelivered
    )
    ctx.check(
        len(keys) <= duplicates <= len(keys) + redelivered,
        f"the worker should detect {len(keys)} duplicates (one per second copy) plus at most the "
        f"{redelivered} duplicate deliveries of the queue, counted {duplicates:.0f}",
    )
    ctx.check(
        after - before == len(keys),
        f"the table grew by {after - before} records for {len(keys)} unique payloads sent twice "
        "(the drill assumes nobody else writes to the stage meanwhile)",
    )
    return [
        f"{doubled} events were queued twice by ingest",
        f"exactly {len(keys)} records, all SUCCEEDED (table grew by {after - before})",
        f"exactly {verified['success_events']} IngestionSuccess events",
        f"the worker detected {duplicates:.0f} duplicate deliveries ({len(keys)} second copies, the rest "
        "redelivered by the queue) and wrote nothing for them",
    ]


SPEC = DrillSpec(
    run=run,
    summary="every event queued twice -> deduplicated",
    default_events=20,
    default_timeout_s=120,
)
