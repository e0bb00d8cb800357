"""slow-downstream: invocations time out mid-record, messages re-surface after the visibility
timeout; after the fix each event SUCCEEDED exactly once."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from functions.common.names import ErrorType, FailureMode, RecordStatus
from lab.gamedays.observe import observe_worker_errors
from lab.gamedays.runner import DrillContext
from lab.gamedays.spec import DrillSpec, Trips
from lab.gamedays.steps import keys_of, records, recover, require_empty_dlq, send_events, verify_exactly_once

Observation = Callable[[DrillContext, Sequence[str]], list[str]]


def run(ctx: DrillContext) -> list[str]:
    """Timeouts -> messages re-surface (receive count > 1) -> restore -> each event SUCCEEDED once."""
    require_empty_dlq(ctx)
    ctx.mark(
        "inject", **ctx.injector.inject(ctx, FailureMode.SLOW_DOWNSTREAM, ttl_seconds=int(ctx.remaining()))
    )
    ctx.injector.settle(ctx, "slow_downstream set")
    sent = send_events(ctx, ctx.events)
    keys = keys_of(sent)
    observe: Observation = ctx.injector.evidence(
        in_handler=timeouts_in_records, around_handler=timeouts_in_lambda_metrics
    )
    claims = observe(ctx, keys)
    ctx.mark("fix", **ctx.injector.restore(ctx))
    recover(ctx, keys)
    verify_exactly_once(ctx, keys)
    return [*claims, f"{len(keys)} events SUCCEEDED exactly once after the fix"]


def timeouts_in_records(ctx: DrillContext, keys: Sequence[str]) -> list[str]:
    """A record still INFLIGHT past its lease, annotated DownstreamTimeoutError, is an invocation
    killed mid-record by its timeout; attempts >= 2 means SQS delivered it again later."""

    def timed_out() -> str | None:
        now = time.time()
        for key, record in records(ctx, keys).items():
            lease_until = record.get("inflightUntil")
            if (
                record.get("status") == RecordStatus.INFLIGHT.value
                and record.get("errorType") == ErrorType.TIMEOUT.value
                and lease_until is not None
                and float(lease_until) < now
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

    key, attempts = ctx.wait_until("a message to re-surface (receive count > 1)", resurfaced, interval_s=1)
    ctx.mark("message re-surfaced after the visibility timeout", key=key, attempts=attempts)
    return [
        "worker invocations timed out mid-record",
        f"a message was delivered again (attempts {attempts})",
    ]


def timeouts_in_lambda_metrics(ctx: DrillContext, keys: Sequence[str]) -> list[str]:
    return [observe_worker_errors(ctx, "worker invocations timed out")]


SPEC = DrillSpec(
    run=run,
    summary="timeouts -> messages re-surface -> restore",
    default_events=5,
    default_timeout_s=240,
    fis=True,
    dlq_trips=Trips(1),
    counts_events=True,
)
