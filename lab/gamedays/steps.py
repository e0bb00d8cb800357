"""The steps drills share: send, watch the queues and records, redrive, recover, verify, alarms."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from functions.common.names import RecordStatus
from lab.gamedays.observe import AlarmInbox
from lab.gamedays.runner import DrillContext, DrillFailed
from lab.runs import save_run
from stage_client import redrive
from stage_client.send import SentEvent, new_run_id, sample_payload, send_payloads
from stage_client.status import AlarmState, queue_alarms, queue_depth, stage_alarms
from stage_client.verify import fetch_statuses, verify_keys

DEFAULT_JITTER_S = 3


def send_events(ctx: DrillContext, count: int, *, label: str = "sent") -> list[SentEvent]:
    run_id = new_run_id(ctx.name)
    payloads = [sample_payload(run_id, index) for index in range(count)]
    sent = send_payloads(ctx.target, payloads)
    save_run(run_id, sent)
    ctx.facts.setdefault("runs", []).append(run_id)
    ctx.mark(f"{label} {len(sent)} events", run_id=run_id)
    return sent


def keys_of(events: Sequence[SentEvent]) -> list[str]:
    return [event.idempotency_key for event in events]


def dlq_depth(ctx: DrillContext) -> tuple[int, int]:
    depth = queue_depth(ctx.target, "dlq", with_age=False)
    if depth is None:
        raise DrillFailed("the target has no DLQ output")
    return depth.visible, depth.in_flight + depth.delayed


def main_depth(ctx: DrillContext) -> int:
    depth = queue_depth(ctx.target, "main", with_age=False)
    if depth is None:
        raise DrillFailed("the target has no main queue output")
    return depth.visible + depth.in_flight + depth.delayed


def require_empty_dlq(ctx: DrillContext) -> None:
    """A drill's DLQ observations are only meaningful from an empty DLQ."""
    visible, hidden = dlq_depth(ctx)
    ctx.check(
        visible + hidden == 0,
        f"the DLQ already holds {visible + hidden} messages: redrive or purge them before this drill "
        "(lab redrive start), or its DLQ assertions would be ambiguous",
    )


def settle_cache(ctx: DrillContext, why: str) -> None:
    """Wait out the handlers' failure-mode cache so every warm container sees the new value."""
    delay = ctx.guardrails.cache_seconds + 1
    ctx.progress(f"{why}: waiting {delay}s for the handlers' failure-mode cache")
    time.sleep(delay)


def records(ctx: DrillContext, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    return fetch_statuses(ctx.target, keys)


def count_by_status(found: dict[str, dict[str, Any]], keys: Sequence[str]) -> dict[str, int]:
    counts = {"MISSING": sum(1 for k in keys if k not in found)}
    for record in found.values():
        counts[str(record.get("status"))] = counts.get(str(record.get("status")), 0) + 1
    return counts


def redrive_dlq(
    ctx: DrillContext,
    *,
    max_messages: int,
    error_type: str | None = None,
    jitter_s: int = DEFAULT_JITTER_S,
) -> redrive.RedriveJob:
    params = redrive.RedriveParams(
        max_messages=max_messages, filter_error_type=error_type, per_message_delay_jitter=jitter_s
    )
    job = redrive.start(ctx.target, params)
    ctx.mark("redrive started", jobId=job.job_id, **params.body())
    last_line = [""]

    def show(progress: redrive.RedriveJob) -> None:
        line = progress.describe()
        if line != last_line[0]:
            ctx.progress(line)
            last_line[0] = line

    finished = redrive.wait(ctx.target, job.job_id, timeout_s=max(10.0, ctx.remaining()), on_progress=show)
    ctx.mark("redrive finished", status=finished.status, **finished.counters)
    ctx.check(
        finished.status == "SUCCEEDED",
        f"redrive job {job.job_id} ended {finished.status}: {finished.body!r}",
    )
    return finished


def wait_dlq_drained(ctx: DrillContext) -> None:
    """Until the DLQ holds nothing, visible or in flight. A message that comes back after the
    redrive deleted it is a copy at-least-once delivery kept (SQS developer guide, "At-least-once
    delivery": a delete can miss a copy, which is received again later): it is redriven too, as an
    operator would, and the worker finds its key already done."""
    copies = 0

    def drained() -> bool:
        nonlocal copies
        visible, hidden = dlq_depth(ctx)
        if visible + hidden == 0:
            return True
        if visible and hidden == 0:
            ctx.mark(
                "the DLQ holds messages again after the redrive (redelivered copies)", dlq_visible=visible
            )
            redrive_dlq(ctx, max_messages=visible, jitter_s=1)
            copies += visible
        return False

    ctx.wait_until(
        "the DLQ to drain (0 visible, 0 in flight)",
        drained,
        interval_s=2,
        describe=lambda: "visible {}, in flight/delayed {}".format(*dlq_depth(ctx)),
    )
    ctx.mark("DLQ drained", redelivered_copies_redriven=copies)


def recover(ctx: DrillContext, keys: Sequence[str]) -> None:
    """Wait until every key SUCCEEDED; messages that reached the DLQ while the fault was on are
    redriven (what an operator does after the fix), which the timeline records."""
    seen_dlq = False

    def settled() -> bool:
        nonlocal seen_dlq
        found = records(ctx, keys)
        if all(found.get(k, {}).get("status") == RecordStatus.SUCCEEDED.value for k in keys):
            return True
        visible, hidden = dlq_depth(ctx)
        if visible and hidden == 0 and main_depth(ctx) == 0:
            seen_dlq = True
            ctx.mark("messages reached the DLQ before the fix; redriving them", dlq_visible=visible)
            redrive_dlq(ctx, max_messages=visible, jitter_s=1)
        return False

    ctx.wait_until(
        "every event to end SUCCEEDED",
        settled,
        interval_s=2,
        describe=lambda: str(count_by_status(records(ctx, keys), keys)),
    )
    ctx.mark("every event SUCCEEDED", events=len(keys), redriven=seen_dlq)
    if seen_dlq:
        wait_dlq_drained(ctx)


def verify_exactly_once(
    ctx: DrillContext, keys: Sequence[str], *, what: str = "every event"
) -> dict[str, Any]:
    """Each key one SUCCEEDED record and exactly one distinct IngestionSuccess event (counted by
    event id: duplicate deliveries are reported, never failed)."""
    report = verify_keys(
        ctx.target,
        keys,
        timeout_s=max(15.0, min(ctx.remaining(), 120.0)),
        count_events=True,
        counts=ctx.audit,
    )
    shown = ("expected", "succeeded", "success_events", "duplicate_deliveries")
    ctx.mark("verified", **{k: v for k, v in report.to_dict().items() if k in shown})
    ctx.check(report.ok, f"{what} SUCCEEDED exactly once: {report.summary()} {report.to_dict()}")
    return report.to_dict()


def alarm_by_metric(ctx: DrillContext, queue_name: str, metric: str) -> AlarmState:
    alarms = queue_alarms(stage_alarms(ctx.target), queue_name)
    matching = [a for a in alarms if a.metric == metric]
    ctx.check(
        bool(matching),
        f"no alarm of the stage watches {metric} of {queue_name} (alarms on it: {[a.name for a in alarms]})",
    )
    return matching[0]


def wait_alarm_notified(ctx: DrillContext, inbox: AlarmInbox, alarm_name: str, state: str) -> None:
    """The alarm reached `state` and its notification reached a subscriber of the alarm topic."""
    wait_alarm_state(ctx, alarm_name, state)
    inbox.wait_for(alarm_name, state)


def wait_alarm_state(ctx: DrillContext, alarm_name: str, state: str) -> None:
    def current() -> str:
        found = [a for a in stage_alarms(ctx.target) if a.name == alarm_name]
        return found[0].state if found else "MISSING"

    ctx.wait_until(
        f"alarm {alarm_name} to reach {state}", lambda: current() == state, interval_s=2, describe=current
    )
    ctx.mark(f"alarm {state}", alarm=alarm_name)
