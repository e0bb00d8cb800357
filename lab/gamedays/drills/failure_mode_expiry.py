"""failure-mode-expiry: a mode written with a short TTL switches itself off; processing recovers
with no reset and the stored value untouched."""

from __future__ import annotations

import time

from functions.common.names import ErrorType, FailureMode
from lab.gamedays.runner import DrillContext
from lab.gamedays.spec import DrillSpec
from lab.gamedays.steps import keys_of, records, recover, require_empty_dlq, send_events, settle_cache
from stage_client.failure_mode import read_failure_mode
from stage_client.verify import verify_keys

# Long enough to see the canary fail, short enough to keep the drill brief.
EXPIRY_TTL_S = 20


def run(ctx: DrillContext) -> list[str]:
    """A mode with a short TTL switches itself off: processing recovers with no reset."""
    require_empty_dlq(ctx)
    ttl = EXPIRY_TTL_S
    injected = ctx.injector.inject(ctx, FailureMode.POISON_PAYLOAD, ttl_seconds=ttl)
    ctx.mark("inject with a short TTL", **injected)
    expires_at = float(injected["expiresAt"])
    ctx.injector.settle(ctx, "poison_payload set")
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


SPEC = DrillSpec(
    run=run,
    summary="a mode expires on its own, no reset",
    default_events=5,
    default_timeout_s=180,
)
