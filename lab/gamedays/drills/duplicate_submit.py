"""duplicate-submit: ingest queues every event twice; the worker keeps one record and one
IngestionSuccess event per key and counts the second copies (and any copy the queue itself
redelivered: at-least-once delivery)."""

from __future__ import annotations

from functions.common.names import FailureMode, MetricName
from lab.gamedays.observe import DuplicateDetections, WorkerCounters, table_count
from lab.gamedays.runner import DrillContext
from lab.gamedays.spec import DrillSpec
from lab.gamedays.steps import keys_of, recover, send_events, verify_exactly_once


def run(ctx: DrillContext) -> list[str]:
    """Every event queued twice -> exactly N records and N IngestionSuccess events."""
    before = table_count(ctx)
    counters = WorkerCounters(ctx)
    detections = DuplicateDetections(ctx)
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
    messages = sum(len(set(ids)) for ids in flagged.values())
    ctx.mark(
        "worker flagged the second copies",
        keys=len(flagged),
        messages=messages,
        redelivered=messages - len(keys),
    )
    # Two copies per key: at most both were flagged, the second always, the first only when the
    # queue delivered it again after it succeeded (a duplicate delivery or a batch that timed out).
    ctx.check(
        all(1 <= len(set(ids)) <= 2 for ids in flagged.values()),
        f"each key should have one or two of its copies flagged as duplicates: {flagged}",
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
        f"the worker flagged the second copy of every key ({messages} messages, {messages - len(keys)} of "
        "them first copies the queue delivered again) and wrote nothing for them; "
        f"its DuplicatesDetected metric rose by {duplicates:.0f}",
    ]


SPEC = DrillSpec(
    run=run,
    summary="every event queued twice -> deduplicated",
    default_events=20,
    default_timeout_s=120,
    counts_events=True,
)
