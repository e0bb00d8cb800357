"""poison-pill: a schema break fills the DLQ and fires its alarms, whose notifications reach a
subscriber of the alarm topic; the fix, a jittered redrive, and every event SUCCEEDED exactly once;
the alarms return to OK and say so."""

from __future__ import annotations

from functions.common.names import ErrorType, FailureMode, Output
from lab.gamedays.observe import AlarmInbox
from lab.gamedays.runner import DrillContext
from lab.gamedays.spec import DrillSpec, Trips
from lab.gamedays.steps import (
    DEFAULT_JITTER_S,
    alarm_by_metric,
    dlq_depth,
    keys_of,
    recover,
    redrive_dlq,
    require_empty_dlq,
    send_events,
    verify_exactly_once,
    wait_alarm_notified,
    wait_dlq_drained,
)
from stage_client import redrive
from stage_client.verify import verify_keys


def run(ctx: DrillContext) -> list[str]:
    """Schema break -> DLQ grows -> DLQ alarms -> preview -> fix -> redrive with jitter -> drained."""
    require_empty_dlq(ctx)
    dlq_name = ctx.target.output(Output.DLQ_NAME)
    depth_alarm = alarm_by_metric(ctx, dlq_name, "ApproximateNumberOfMessagesVisible")
    age_alarm = alarm_by_metric(ctx, dlq_name, "ApproximateAgeOfOldestMessage")
    ctx.mark("DLQ alarms found", depth=depth_alarm.name, age=age_alarm.name)
    inbox = AlarmInbox(ctx)
    ctx.mark("alarm topic subscriber found", queue=inbox.queue_url)

    ctx.mark(
        "inject", **ctx.injector.inject(ctx, FailureMode.POISON_PAYLOAD, ttl_seconds=int(ctx.remaining()))
    )
    ctx.injector.settle(ctx, "poison_payload set")
    sent = send_events(ctx, ctx.events)
    keys = keys_of(sent)

    ctx.wait_until(
        "the first message in the DLQ", lambda: dlq_depth(ctx)[0] > 0, describe=lambda: str(dlq_depth(ctx))
    )
    ctx.mark("first DLQ message", dlq_visible=dlq_depth(ctx)[0])
    ctx.wait_until(
        f"all {len(keys)} events in the DLQ",
        lambda: dlq_depth(ctx)[0] >= len(keys),
        interval_s=2,
        describe=lambda: f"DLQ visible {dlq_depth(ctx)[0]}",
    )
    ctx.mark("DLQ holds every poisoned event", dlq_visible=dlq_depth(ctx)[0])
    wait_alarm_notified(ctx, inbox, depth_alarm.name, "ALARM")
    wait_alarm_notified(ctx, inbox, age_alarm.name, "ALARM")

    sample = redrive.preview(
        ctx.target, max_messages=min(10, len(keys)), error_type=ErrorType.SCHEMA_VALIDATION.value
    )
    messages = sample.messages
    error_types = {str(m.get("errorType")) for m in messages}
    ctx.mark("preview", sampled=len(messages), errorTypes=sorted(error_types))
    ctx.check(bool(messages), f"the preview sampled no message of a DLQ holding {len(keys)}: {sample.body!r}")
    ctx.check(
        error_types == {ErrorType.SCHEMA_VALIDATION.value},
        f"the preview should show only {ErrorType.SCHEMA_VALIDATION.value}, got {sorted(error_types)}",
    )
    ctx.check(
        sum(dlq_depth(ctx)) >= len(keys), "the preview removed messages from the DLQ (it must never delete)"
    )

    ctx.mark("fix", **ctx.injector.restore(ctx))
    ctx.injector.settle(ctx, "failure_mode none")
    canary = send_events(ctx, 1, label="canary:")
    canary_report = verify_keys(ctx.target, keys_of(canary), timeout_s=min(60.0, ctx.remaining()))
    ctx.check(canary_report.ok, f"the fix did not take: canary not SUCCEEDED ({canary_report.summary()})")
    ctx.mark("canary SUCCEEDED: the fix is live")

    finished = redrive_dlq(
        ctx, max_messages=len(keys), error_type=ErrorType.SCHEMA_VALIDATION.value, jitter_s=DEFAULT_JITTER_S
    )
    moved = finished.counters
    ctx.check(moved["moved"] == len(keys), f"the redrive should move {len(keys)} messages, moved {moved}")
    ctx.check(moved["quarantined"] == 0, f"nothing should be quarantined on a first redrive: {moved}")
    wait_dlq_drained(ctx)
    recover(ctx, keys)
    verify_exactly_once(ctx, keys)
    wait_alarm_notified(ctx, inbox, depth_alarm.name, "OK")
    wait_alarm_notified(ctx, inbox, age_alarm.name, "OK")
    return [
        f"{len(keys)} poisoned events reached the DLQ",
        f"DLQ alarms {depth_alarm.name} and {age_alarm.name} reached ALARM, and their notifications "
        "reached the alarm topic's subscriber",
        f"preview showed {ErrorType.SCHEMA_VALIDATION.value} only",
        f"redrive moved {moved['moved']} with jitter {DEFAULT_JITTER_S}s; the DLQ drained",
        f"{len(keys)} events SUCCEEDED exactly once (records and IngestionSuccess events)",
        "DLQ alarms returned to OK, and said so to the subscriber",
    ]


SPEC = DrillSpec(
    run=run,
    summary="schema break -> DLQ + alarms notified -> fix -> redrive -> drained",
    default_events=10,
    default_timeout_s=300,
    dlq_trips=Trips(1),
    waits_for_alarms=True,
    counts_events=True,
)
