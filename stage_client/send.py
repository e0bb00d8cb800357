"""Sample events through POST /events: payloads, parallel sends, what each send got back."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from stage_client.api import call_api
from stage_client.target import Target

# Enough parallel requests to hide the API's per-request latency, few enough to stay polite to a
# laptop's local cloud (2 cores) and to a stage's default route throttling.
DEFAULT_CONCURRENCY = 8


class SendError(RuntimeError):
    """Events were not accepted (the API answered something other than 202)."""


@dataclass(frozen=True)
class SentEvent:
    idempotency_key: str
    message_id: str
    status: int
    payload: dict[str, Any]
    # Set when the stage queued the event twice (failure mode duplicate_submit).
    duplicate_message_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def new_run_id(prefix: str = "run") -> str:
    return f"{prefix}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


def sample_payload(run_id: str, index: int) -> dict[str, Any]:
    """A valid order event (the ingest schema: orderId string, amount number), unique per run."""
    return {
        "orderId": f"{run_id}-{index:06d}",
        "amount": round(10 + (index % 97) * 1.25, 2),
        "currency": "EUR",
        "runId": run_id,
    }


def send_payloads(
    target: Target,
    payloads: Sequence[dict[str, Any]],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[SentEvent]:
    """POST every payload; raises SendError naming the first rejected payload."""

    def post(payload: dict[str, Any]) -> SentEvent:
        response = call_api(target, "POST", "/events", body=payload)
        key, message_id = response.field("idempotencyKey"), response.field("messageId")
        if response.status != 202 or not key:
            raise SendError(f"POST /events answered {response.status} {response.body!r} for {payload!r}")
        duplicate = response.field("duplicateMessageId")
        return SentEvent(
            str(key), str(message_id or ""), response.status, payload, str(duplicate) if duplicate else None
        )

    sent: list[SentEvent] = []
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(payloads) or 1))) as pool:
        for event in pool.map(post, payloads):
            sent.append(event)
            if on_progress:
                on_progress(len(sent), len(payloads))
    return sent


def send_samples(
    target: Target,
    count: int,
    *,
    run_id: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[str, list[SentEvent]]:
    run = run_id or new_run_id()
    payloads = [sample_payload(run, index) for index in range(count)]
    return run, send_payloads(target, payloads, concurrency=concurrency, on_progress=on_progress)
