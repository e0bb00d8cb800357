"""random-fail-p30: 30% transient failures give partial batch responses; retries settle, and no
event is lost or doubled."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from functions.common.names import DetailType, ErrorType, FailureMode, MetricName, Output, RecordStatus
from lab.gamedays.observe import (
    DuplicateDetections,
    PlatformDuplicates,
    WorkerCounters,
    observe_worker_errors,
)
from lab.gamedays.runner import DrillContext
from lab.gamedays.spec import DrillSpec
from lab.gamedays.steps import (
    count_by_status,
    keys_of,
    records,
    recover,
    require_empty_dlq,
    send_events,
    verify_exactly_once,
)
from stage_client.audit import collect_events


class Evidence(Protocol):
    """What the drill observes of the fault, made before the injection (baselines)."""

    def during(self, ctx: DrillContext, keys: Sequence[str]) -> list[str]: ...

    def after_recovery(self, ctx: DrillContext, retried: int, keys: Sequence[str]) -> list[str]: ...


def run(ctx: DrillContext) -> list[str]:
    """30% transient failures -> partial batch responses -> retries settle -> none lost or doubled."""
    require_empty_dlq(ctx)
    in_handler: Callable[[DrillContext], Evidence] = HandlerEvidence
    around_handler: Callable[[DrillContext], Evidence] = PlatformEvidence
    evidence = ctx.injector.evidence(in_handler=in_handler, around_handler=around_handler)(ctx)
    ctx.mark(
        "inject", **ctx.injector.inject(ctx, FailureMode.RANDOM_FAIL_P30, ttl_seconds=int(ctx.remaining()))
    )
    ctx.injector.settle(ctx, "random_fail_p30 set")
    sent = send_events(ctx, ctx.events)
    keys = keys_of(sent)
    claims = evidence.during(ctx, keys)
    ctx.mark("fix", **ctx.injector.restore(ctx))
    recover(ctx, keys)
    final = records(ctx, keys)
    retried = sum(1 for r in final.values() if int(r.get("attempts", 0)) >= 2)
    ctx.mark("retries settled", retried_records=retried)
    claims += evidence.after_recovery(ctx, retried, keys)
    verify_exactly_once(ctx, keys, what="no event lost or duplicated:")
    return [*claims, f"{len(keys)} events SUCCEEDED exactly once"]


class HandlerEvidence:
    """The handler fails records itself: their state, the failure events and the worker's EMF
    counters show the partial batches and the retries."""

    def __init__(self, ctx: DrillContext) -> None:
        self._counters = WorkerCounters(ctx)
        self._platform = PlatformDuplicates(ctx, ctx.target.output(Output.QUEUE_NAME))
        self._detections = DuplicateDetections(ctx)

    def during(self, ctx: DrillContext, keys: Sequence[str]) -> list[str]:
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
        return [
            f"partial batches: {failed} records failed transiently while {first_try} succeeded first time",
            f"{failures} IngestionFailure events were published",
        ]

    def after_recovery(self, ctx: DrillContext, retried: int, keys: Sequence[str]) -> list[str]:
        ctx.check(retried > 0, "no record needed a retry: the transient failures were not retried")
        # A batch that failed as a whole would bring its succeeded records back as duplicates;
        # reporting only the failed items deletes them, so the worker sees no duplicate beyond the
        # ones at-least-once delivery made (a delete that missed a copy of the message).
        # Counted from the worker's log lines for this drill's keys: the DuplicatesDetected metric
        # is stage-wide, and a late datum of an earlier run would land in this drill's window.
        processed = self._counters.wait_for(MetricName.RECORDS_PROCESSED, len(keys))
        duplicates = self._detections.settled_lines(set(keys))
        allowed = self._platform.allowance(len(keys))
        ctx.mark(
            "worker metrics",
            RecordsProcessed=processed,
            duplicatesOfDrillKeys=duplicates,
            platformDuplicates=allowed,
            platformDuplicatesRecorded=self._platform.recorded,
        )
        ctx.check(
            duplicates <= allowed,
            f"{duplicates} succeeded records came back (worker log lines 'duplicate of a processed key'), "
            f"more than the {allowed} "
            "duplicate deliveries the queue made: the worker failed whole batches instead of reporting "
            "only the failed items",
        )
        return [
            f"{retried} records succeeded on a retry",
            f"no succeeded record came back beyond the queue's own duplicate deliveries (duplicates of the "
            f"drill's keys {duplicates} <= {allowed}, RecordsProcessed {processed:.0f})",
        ]


class PlatformEvidence:
    """The fault acts around the handler: only AWS/Lambda Errors show it."""

    def __init__(self, ctx: DrillContext) -> None:
        del ctx  # no baseline: the errors are counted from the drill's start

    def during(self, ctx: DrillContext, keys: Sequence[str]) -> list[str]:
        return [observe_worker_errors(ctx, "worker invocations failed")]

    def after_recovery(self, ctx: DrillContext, retried: int, keys: Sequence[str]) -> list[str]:
        return []


SPEC = DrillSpec(
    run=run,
    summary="30% transient failures -> partial batches",
    default_events=30,
    default_timeout_s=240,
    fis=True,
    counts_events=True,
)
