"""The automated gamedays: each injects a fault, asserts what it can observe, fixes and verifies.

Every step either observes its claim through the stage's own APIs (queues, table, alarms, the
event audit queue, the redrive API) or fails with what it last saw; none passes by default.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.common.names import (
    METRICS_NAMESPACE,
    DetailType,
    ErrorType,
    FailureMode,
    MessageAttribute,
    MetricName,
    Output,
    RecordStatus,
)
from lab import redrive
from lab.audit import collect_events
from lab.failure_mode import read_failure_mode
from lab.gamedays.runner import DrillContext, DrillFailed
from lab.send import SentEvent, new_run_id, sample_payload, save_run, send_payloads
from lab.status import AlarmState, queue_alarms, queue_depth, stage_alarms
from lab.target import Target
from lab.verify import fetch_statuses, verify_keys

DEFAULT_JITTER_S = 3


# --- shared steps ---------------------------------------------------------------------------
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
) -> dict[str, Any]:
    params = redrive.RedriveParams(
        max_messages=max_messages, filter_error_type=error_type, per_message_delay_jitter=jitter_s
    )
    job = redrive.start(ctx.target, params)
    ctx.mark("redrive started", jobId=job["jobId"], **params.body())
    last_line = [""]

    def show(progress: dict[str, Any]) -> None:
        line = redrive.describe(progress)
        if line != last_line[0]:
            ctx.progress(line)
            last_line[0] = line

    finished = redrive.wait(ctx.target, job["jobId"], timeout_s=max(10.0, ctx.remaining()), on_progress=show)
    ctx.mark("redrive finished", status=finished.get("status"), **redrive.counters(finished))
    ctx.check(
        finished.get("status") == "SUCCEEDED",
        f"redrive job {job['jobId']} ended {finished.get('status')}: {finished!r}",
    )
    return finished


def wait_dlq_drained(ctx: DrillContext) -> None:
    ctx.wait_until(
        "the DLQ to drain (0 visible, 0 in flight)",
        lambda: sum(dlq_depth(ctx)) == 0,
        interval_s=2,
        describe=lambda: "visible {}, in flight/delayed {}".format(*dlq_depth(ctx)),
    )
    ctx.mark("DLQ drained")


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
    """Each key one SUCCEEDED record and exactly one IngestionSuccess event on the bus."""
    report = verify_keys(
        ctx.target,
        keys,
        timeout_s=max(15.0, min(ctx.remaining(), 120.0)),
        count_events=True,
        counts=ctx.audit,
    )
    ctx.mark(
        "verified",
        **{k: v for k, v in report.to_dict().items() if k in ("expected", "succeeded", "success_events")},
    )
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


def wait_alarm_state(ctx: DrillContext, alarm_name: str, state: str) -> None:
    def current() -> str:
        found = [a for a in stage_alarms(ctx.target) if a.name == alarm_name]
        return found[0].state if found else "MISSING"

    ctx.wait_until(
        f"alarm {alarm_name} to reach {state}", lambda: current() == state, interval_s=2, describe=current
    )
    ctx.mark(f"alarm {state}", alarm=alarm_name)


# --- the drills -----------------------------------------------------------------------------
def poison_pill(ctx: DrillContext) -> list[str]:
    """Schema break -> DLQ grows -> DLQ alarms -> preview -> fix -> redrive with jitter -> drained."""
    require_empty_dlq(ctx)
    dlq_name = ctx.target.output(Output.DLQ_NAME)
    depth_alarm = alarm_by_metric(ctx, dlq_name, "ApproximateNumberOfMessagesVisible")
    age_alarm = alarm_by_metric(ctx, dlq_name, "ApproximateAgeOfOldestMessage")
    ctx.mark("DLQ alarms found", depth=depth_alarm.name, age=age_alarm.name)

    ctx.mark(
        "inject", **ctx.injector.inject(ctx, FailureMode.POISON_PAYLOAD, ttl_seconds=int(ctx.remaining()))
    )
    settle_cache(ctx, "poison_payload set")
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
    wait_alarm_state(ctx, depth_alarm.name, "ALARM")
    wait_alarm_state(ctx, age_alarm.name, "ALARM")

    sample = redrive.preview(
        ctx.target, max_messages=min(10, len(keys)), error_type=ErrorType.SCHEMA_VALIDATION.value
    )
    messages = redrive.preview_messages(sample)
    error_types = {str(m.get("errorType")) for m in messages}
    ctx.mark("preview", sampled=len(messages), errorTypes=sorted(error_types))
    ctx.check(bool(messages), f"the preview sampled no message of a DLQ holding {len(keys)}: {sample!r}")
    ctx.check(
        error_types == {ErrorType.SCHEMA_VALIDATION.value},
        f"the preview should show only {ErrorType.SCHEMA_VALIDATION.value}, got {sorted(error_types)}",
    )
    ctx.check(
        sum(dlq_depth(ctx)) >= len(keys), "the preview removed messages from the DLQ (it must never delete)"
    )

    ctx.mark("fix", **ctx.injector.restore(ctx))
    settle_cache(ctx, "failure_mode none")
    canary = send_events(ctx, 1, label="canary:")
    canary_report = verify_keys(ctx.target, keys_of(canary), timeout_s=min(60.0, ctx.remaining()))
    ctx.check(canary_report.ok, f"the fix did not take: canary not SUCCEEDED ({canary_report.summary()})")
    ctx.mark("canary SUCCEEDED: the fix is live")

    finished = redrive_dlq(
        ctx, max_messages=len(keys), error_type=ErrorType.SCHEMA_VALIDATION.value, jitter_s=DEFAULT_JITTER_S
    )
    moved = redrive.counters(finished)
    ctx.check(moved["moved"] == len(keys), f"the redrive should move {len(keys)} messages, moved {moved}")
    ctx.check(moved["quarantined"] == 0, f"nothing should be quarantined on a first redrive: {moved}")
    wait_dlq_drained(ctx)
    recover(ctx, keys)
    verify_exactly_once(ctx, keys)
    wait_alarm_state(ctx, depth_alarm.name, "OK")
    wait_alarm_state(ctx, age_alarm.name, "OK")
    return [
        f"{len(keys)} poisoned events reached the DLQ",
        f"DLQ alarms {depth_alarm.name} and {age_alarm.name} reached ALARM",
        f"preview showed {ErrorType.SCHEMA_VALIDATION.value} only",
        f"redrive moved {moved['moved']} with jitter {DEFAULT_JITTER_S}s; the DLQ drained",
        f"{len(keys)} events SUCCEEDED exactly once (records and IngestionSuccess events)",
        "DLQ alarms returned to OK",
    ]


def slow_downstream(ctx: DrillContext) -> list[str]:
    """Timeouts -> messages re-surface (receive count > 1) -> restore -> each event SUCCEEDED once."""
    require_empty_dlq(ctx)
    ctx.mark(
        "inject", **ctx.injector.inject(ctx, FailureMode.SLOW_DOWNSTREAM, ttl_seconds=int(ctx.remaining()))
    )
    if ctx.injector.kind == "ssm":
        settle_cache(ctx, "slow_downstream set")
    sent = send_events(ctx, ctx.events)
    keys = keys_of(sent)
    claims: list[str] = []
    if ctx.injector.kind == "fis":
        claims.append(observe_worker_errors(ctx, "worker invocations timed out"))
    else:
        # A record still INFLIGHT past its lease, annotated DownstreamTimeoutError, is an invocation
        # killed mid-record by its timeout; attempts >= 2 means SQS delivered it again later.
        def timed_out() -> str | None:
            now = time.time()
            for key, record in records(ctx, keys).items():
                if (
                    record.get("status") == RecordStatus.INFLIGHT.value
                    and record.get("errorType") == ErrorType.TIMEOUT.value
                    and float(record.get("inflightUntil", now)) < now
                ):
                    return key
            return None

        key = ctx.wait_until("an invocation to time out mid-record", timed_out, interval_s=1)
        ctx.mark("worker timed out (record INFLIGHT past its lease)", key=key)

        def resurfaced() -> tuple[str, int] | None:
            for k, record in records(ctx, keys).items():
                if int(record.get("attempts", 0)) >= 2:
                    return k, int(record["attempts"])
            return None

        key, attempts = ctx.wait_until(
            "a message to re-surface (receive count > 1)", resurfaced, interval_s=1
        )
        ctx.mark("message re-surfaced after the visibility timeout", key=key, attempts=attempts)
        claims += [
            "worker invocations timed out mid-record",
            f"a message was delivered again (attempts {attempts})",
        ]
    ctx.mark("fix", **ctx.injector.restore(ctx))
    recover(ctx, keys)
    verify_exactly_once(ctx, keys)
    return [*claims, f"{len(keys)} events SUCCEEDED exactly once after the fix"]


def random_fail_p30(ctx: DrillContext) -> list[str]:
    """30% transient failures -> partial batch responses -> retries settle -> none lost or doubled."""
    require_empty_dlq(ctx)
    counters = WorkerCounters(ctx) if ctx.injector.kind == "ssm" else None
    ctx.mark(
        "inject", **ctx.injector.inject(ctx, FailureMode.RANDOM_FAIL_P30, ttl_seconds=int(ctx.remaining()))
    )
    if ctx.injector.kind == "ssm":
        settle_cache(ctx, "random_fail_p30 set")
    sent = send_events(ctx, ctx.events)
    keys = keys_of(sent)
    claims: list[str] = []
    if ctx.injector.kind == "fis":
        claims.append(observe_worker_errors(ctx, "worker invocations failed"))
    else:

        def partial() -> tuple[int, int] | None:
            found = records(ctx, keys)
            failed = [r for r in found.values() if r.get("errorType") == ErrorType.TRANSIENT.value]
            first_try = [
                r
                for r in found.values()
                if r.get("status") == RecordStatus.SUCCEEDED.value and int(r.get("attempts", 0)) == 1
            ]
            return (len(failed), len(first_try)) if failed and first_try else None

        failed, first_try = ctx.wait_until(
            "transient failures beside records that succeeded first time (a partial batch)",
            partial,
            interval_s=0.5,
            describe=lambda: str(count_by_status(records(ctx, keys), keys)),
        )
        ctx.mark("partial batch observed", failed_transient=failed, succeeded_first_try=first_try)
        collect_events(ctx.target, keys, ctx.audit)
        failures = ctx.audit.total(DetailType.FAILURE)
        ctx.mark("IngestionFailure events on the bus", count=failures)
        ctx.check(
            failures > 0, "no IngestionFailure event reached the audit queue while records were failing"
        )
        claims += [
            f"partial batches: {failed} records failed transiently while {first_try} succeeded first time",
            f"{failures} IngestionFailure events were published",
        ]
    ctx.mark("fix", **ctx.injector.restore(ctx))
    recover(ctx, keys)
    final = records(ctx, keys)
    retried = sum(1 for r in final.values() if int(r.get("attempts", 0)) >= 2)
    ctx.mark("retries settled", retried_records=retried)
    if counters is not None:
        ctx.check(retried > 0, "no record needed a retry: the transient failures were not retried")
        claims.append(f"{retried} records succeeded on a retry")
        # A batch that failed as a whole would bring its succeeded records back as duplicates;
        # reporting only the failed items deletes them, so the worker sees no duplicate at all.
        processed, duplicates = counters.wait_for_processed(len(keys))
        ctx.mark("worker metrics", RecordsProcessed=processed, DuplicatesDetected=duplicates)
        ctx.check(
            duplicates == 0,
            f"{duplicates:.0f} succeeded records came back (DuplicatesDetected): the worker failed whole "
            "batches instead of reporting only the failed items",
        )
        claims.append(
            f"no succeeded record came back (DuplicatesDetected 0, RecordsProcessed {processed:.0f})"
        )
    verify_exactly_once(ctx, keys, what="no event lost or duplicated:")
    return [*claims, f"{len(keys)} events SUCCEEDED exactly once"]


def duplicate_submit(ctx: DrillContext) -> list[str]:
    """Every event queued twice -> exactly N records and N IngestionSuccess events."""
    before = table_count(ctx)
    counters = WorkerCounters(ctx)
    ctx.mark(
        "inject", **ctx.injector.inject(ctx, FailureMode.DUPLICATE_SUBMIT, ttl_seconds=int(ctx.remaining()))
    )
    settle_cache(ctx, "duplicate_submit set")
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
    ctx.mark("worker detected the second copies", DuplicatesDetected=duplicates)
    ctx.check(
        duplicates == len(keys),
        f"the worker should detect {len(keys)} duplicates (one per second copy), counted {duplicates:.0f}",
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
        f"the worker detected {duplicates:.0f} duplicate deliveries and wrote nothing for them",
    ]


def failure_mode_expiry(ctx: DrillContext) -> list[str]:
    """A mode with a short TTL switches itself off: processing recovers with no reset."""
    require_empty_dlq(ctx)
    ttl = 20
    injected = ctx.injector.inject(ctx, FailureMode.POISON_PAYLOAD, ttl_seconds=ttl)
    ctx.mark("inject with a short TTL", **injected)
    expires_at = float(injected["expiresAt"])
    settle_cache(ctx, "poison_payload set")
    canary = send_events(ctx, 1, label="canary:")

    def canary_failed() -> bool:
        record = records(ctx, keys_of(canary)).get(canary[0].idempotency_key, {})
        return record.get("errorType") == ErrorType.SCHEMA_VALIDATION.value

    ctx.wait_until(
        f"the canary to fail with {ErrorType.SCHEMA_VALIDATION.value} (the mode is live)",
        canary_failed,
        timeout_s=max(5.0, expires_at - time.time()),
        interval_s=0.5,
    )
    ctx.mark("mode is live: canary failed", errorType=ErrorType.SCHEMA_VALIDATION.value)
    ctx.wait_until("the mode's expiry", lambda: time.time() >= expires_at, interval_s=0.5)
    state = read_failure_mode(ctx.target, guardrails=ctx.guardrails)
    ctx.mark("expired", stored=state.mode, effective=state.effective, resolution=state.resolution)
    ctx.check(
        state.mode == FailureMode.POISON_PAYLOAD.value,
        f"the parameter changed during the drill ({state.raw!r}): this drill must see it expire untouched",
    )
    ctx.check(state.effective == FailureMode.NONE.value, f"an expired mode should resolve to none: {state}")
    settle_cache(ctx, "mode expired")
    sent = send_events(ctx, ctx.events, label="after expiry, sent")
    report = verify_keys(ctx.target, keys_of(sent), timeout_s=min(60.0, ctx.remaining()))
    ctx.check(report.ok, f"processing did not recover after the expiry: {report.summary()}")
    still = read_failure_mode(ctx.target, guardrails=ctx.guardrails)
    ctx.check(
        still.mode == FailureMode.POISON_PAYLOAD.value,
        "someone reset the mode: recovery must come from expiry",
    )
    ctx.mark("processing recovered without a reset", succeeded=report.succeeded, stored_mode=still.mode)
    recover(ctx, keys_of(canary))
    return [
        f"poison_payload with a {ttl}s TTL took effect (canary failed)",
        "after its expiry the stored value was unchanged yet resolved to none",
        f"{report.succeeded} events sent after the expiry SUCCEEDED with no reset",
        "the canary recovered on its retry",
    ]


def redrive_quarantine(ctx: DrillContext) -> list[str]:
    """A poison message redriven past the limit goes to quarantine, never back to the main queue."""
    require_empty_dlq(ctx)
    quarantine_url = ctx.target.output(Output.QUARANTINE_QUEUE_URL)
    ctx.mark(
        "inject", **ctx.injector.inject(ctx, FailureMode.POISON_PAYLOAD, ttl_seconds=int(ctx.remaining()))
    )
    settle_cache(ctx, "poison_payload set")
    sent = send_events(ctx, max(1, ctx.events))
    keys = keys_of(sent)
    limit: int | None = None
    redrives = 0
    while True:
        ctx.wait_until(
            f"every poisoned message back in the DLQ (after {redrives} redrives)",
            lambda: dlq_depth(ctx)[0] >= len(keys),
            interval_s=2,
            describe=lambda: "DLQ visible {}, in flight {}".format(*dlq_depth(ctx)),
        )
        sample = redrive.preview(ctx.target, max_messages=len(keys))
        messages = redrive.preview_messages(sample)
        if limit is None:
            # The redrive function reports the limit it enforces; the worker-side guess is a fallback.
            limit = int(sample.get("maxRedrivesPerMessage", ctx.guardrails.max_redrives_per_message))
            ctx.mark("redrive limit", maxRedrivesPerMessage=limit)
        counts = sorted(int(m.get("redriveCount", -1)) for m in messages)
        ctx.mark("messages in the DLQ", redrives=redrives, redriveCounts=counts)
        ctx.check(
            counts == [redrives] * len(keys),
            f"after {redrives} redrives every message should carry redriveCount {redrives}, got {counts}",
        )
        ctx.check(
            all(bool(m.get("wouldQuarantine")) == (redrives >= limit) for m in messages),
            f"preview's wouldQuarantine disagrees with the limit {limit}: {messages}",
        )
        finished = redrive_dlq(ctx, max_messages=len(keys), jitter_s=0)
        moved = redrive.counters(finished)
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
        redrives += 1
    ctx.mark("quarantined", messages=len(keys), after_redrives=redrives)

    found = records(ctx, keys)
    statuses = {k: r.get("status") for k, r in found.items()}
    ctx.check(
        len(statuses) == len(keys) and all(s == RecordStatus.QUARANTINED.value for s in statuses.values()),
        f"every quarantined key should be recorded QUARANTINED: {statuses}",
    )
    # Long enough for a message wrongly sent to the main queue to show up there.
    time.sleep(3)
    ctx.check(main_depth(ctx) == 0, "a quarantined message went back to the main queue")
    ctx.check(sum(dlq_depth(ctx)) == 0, "a quarantined message is still in the DLQ")
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


# --- observation helpers --------------------------------------------------------------------
def observe_worker_errors(ctx: DrillContext, what: str) -> str:
    """FIS faults stop the invocation before our handler runs: watch AWS/Lambda Errors instead."""
    worker = ctx.target.output(Output.WORKER_FUNCTION_NAME)
    since = datetime.now(UTC) - timedelta(minutes=1)

    def errors() -> float | None:
        points = (
            ctx.target.client("cloudwatch")
            .get_metric_statistics(
                Namespace="AWS/Lambda",
                MetricName="Errors",
                Dimensions=[{"Name": "FunctionName", "Value": worker}],
                StartTime=since,
                EndTime=datetime.now(UTC) + timedelta(minutes=1),
                Period=60,
                Statistics=["Sum"],
            )
            .get("Datapoints", [])
        )
        total = sum(p["Sum"] for p in points)
        return total or None

    total = ctx.wait_until(f"AWS/Lambda Errors of {worker} > 0", errors, interval_s=15)
    ctx.mark(what, lambda_errors=total)
    return f"{what}: {total:.0f} worker errors in AWS/Lambda metrics"


class WorkerCounters:
    """The worker's own EMF counters (RecordsProcessed, DuplicatesDetected) since the drill began.

    Totals over one fixed window, read before and after, so the difference is what the drill
    caused whatever the period alignment; summed over every dimension set the metric has.
    """

    def __init__(self, ctx: DrillContext, lookback: timedelta = timedelta(minutes=15)) -> None:
        self._ctx = ctx
        self._since = datetime.now(UTC) - lookback
        self._baseline = {name: self._total(name) for name in self._names()}

    @staticmethod
    def _names() -> tuple[MetricName, MetricName]:
        return MetricName.RECORDS_PROCESSED, MetricName.DUPLICATES_DETECTED

    def _total(self, name: MetricName) -> float:
        cloudwatch = self._ctx.target.client("cloudwatch")
        metrics = cloudwatch.list_metrics(Namespace=METRICS_NAMESPACE, MetricName=name.value).get(
            "Metrics", []
        )
        total = 0.0
        for metric in metrics:
            points = cloudwatch.get_metric_statistics(
                Namespace=METRICS_NAMESPACE,
                MetricName=name.value,
                Dimensions=metric.get("Dimensions", []),
                StartTime=self._since,
                EndTime=datetime.now(UTC) + timedelta(minutes=1),
                Period=60,
                Statistics=["Sum"],
            ).get("Datapoints", [])
            total += sum(point["Sum"] for point in points)
        return total

    def delta(self, name: MetricName) -> float:
        return self._total(name) - self._baseline[name]

    def wait_for(self, name: MetricName, expected: int) -> float:
        """The metric's increase once it reached `expected` (metrics trail the work by seconds)."""
        value = self._ctx.wait_until(
            f"the worker's {name.value} metric to count {expected}",
            lambda: (delta := self.delta(name)) >= expected and delta,
            timeout_s=min(180.0, self._ctx.remaining()),
            interval_s=3,
            describe=lambda: f"{name.value} +{self.delta(name):.0f}",
        )
        return float(value)

    def wait_for_processed(self, expected: int) -> tuple[float, float]:
        """(RecordsProcessed, DuplicatesDetected) once the metrics account for `expected` records."""
        processed = self.wait_for(MetricName.RECORDS_PROCESSED, expected)
        return processed, self.delta(MetricName.DUPLICATES_DETECTED)


def table_count(ctx: DrillContext) -> int:
    paginator = ctx.target.client("dynamodb").get_paginator("scan")
    return sum(
        page["Count"]
        for page in paginator.paginate(TableName=ctx.target.output(Output.TABLE_NAME), Select="COUNT")
    )


def take_quarantined(ctx: DrillContext, queue_url: str, keys: set[str]) -> list[str]:
    """Receive and delete the drill's own messages from the quarantine queue; others stay."""
    sqs = ctx.target.client("sqs")
    taken: list[str] = []
    for _ in range(20):
        messages = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            VisibilityTimeout=30,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            break
        for message in messages:
            attribute = message.get("MessageAttributes", {}).get(MessageAttribute.IDEMPOTENCY_KEY.value, {})
            key = attribute.get("StringValue")
            if key in keys:
                taken.append(key)
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        if len(taken) >= len(keys):
            break
    return taken


@dataclass(frozen=True)
class DrillSpec:
    run: Callable[[DrillContext], list[str]]
    summary: str
    default_events: int
    default_timeout_s: float
    fis: bool = False
    # How many trips main queue -> DLQ the drill waits for, and whether it waits for alarms:
    # what its default time budget scales with on a stage with slower settings than local.
    dlq_trips: float = 0
    waits_for_alarms: bool = False

    def budget_s(self, timing: StageTiming, max_redrives: int) -> float:
        trips = self.dlq_trips if self.dlq_trips >= 0 else max_redrives + 1
        needed = trips * timing.dlq_trip_s + (2 * timing.alarm_s if self.waits_for_alarms else 0) + 120
        return max(self.default_timeout_s, needed)


@dataclass(frozen=True)
class StageTiming:
    """How long the stage takes to move a failing message to the DLQ and to flip an alarm."""

    dlq_trip_s: float
    alarm_s: float


def stage_timing(target: Target) -> StageTiming:
    """From the main queue's visibility timeout and redrive policy, and the DLQ alarms' periods."""
    attributes = target.client("sqs").get_queue_attributes(
        QueueUrl=target.output(Output.QUEUE_URL), AttributeNames=["VisibilityTimeout", "RedrivePolicy"]
    )["Attributes"]
    visibility = int(attributes.get("VisibilityTimeout", 30))
    receives = int(json.loads(attributes.get("RedrivePolicy", "{}")).get("maxReceiveCount", 5))
    dlq_name = target.optional_output(Output.DLQ_NAME) or ""
    alarms = queue_alarms(stage_alarms(target), dlq_name)
    alarm_s = max((a.period_s * a.evaluation_periods for a in alarms), default=300)
    return StageTiming(dlq_trip_s=visibility * (receives + 1), alarm_s=float(alarm_s))


DRILLS: dict[str, DrillSpec] = {
    "poison-pill": DrillSpec(
        poison_pill,
        "schema break -> DLQ + alarms -> fix -> redrive -> drained",
        10,
        300,
        dlq_trips=1,
        waits_for_alarms=True,
    ),
    "slow-downstream": DrillSpec(
        slow_downstream, "timeouts -> messages re-surface -> restore", 5, 240, fis=True, dlq_trips=1
    ),
    "random-fail-p30": DrillSpec(
        random_fail_p30, "30% transient failures -> partial batches", 30, 240, fis=True
    ),
    "duplicate-submit": DrillSpec(duplicate_submit, "every event queued twice -> deduplicated", 20, 120),
    "failure-mode-expiry": DrillSpec(failure_mode_expiry, "a mode expires on its own, no reset", 5, 180),
    "redrive-quarantine": DrillSpec(
        redrive_quarantine, "redriven past the limit -> quarantine, not the main queue", 1, 600, dlq_trips=-1
    ),
}

__all__ = ["DRILLS", "DrillSpec"]
