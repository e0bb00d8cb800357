"""Sample events through POST /events, and the run files that remember what was sent."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lab.api import call_api
from lab.target import LAB_STATE_DIR, Target

RUNS_DIR_ENV = "LAB_RUNS_DIR"
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


def default_runs_dir() -> Path:
    """$LAB_RUNS_DIR, else runs/ in the lab's state dir (read at call time, so tests can redirect it)."""
    return Path(os.environ.get(RUNS_DIR_ENV) or LAB_STATE_DIR / "runs")


def save_run(run_id: str, events: Iterable[SentEvent], runs_dir: Path | None = None) -> Path:
    """One JSON line per accepted event: `lab verify --run-id` and `lab send --duplicate-of` read it."""
    runs_dir = runs_dir or default_runs_dir()
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = runs_dir / f"{run_id}.jsonl"
    with path.open("a", encoding="utf-8") as handle:
        for event in events:
            handle.write(json.dumps(event.to_dict(), sort_keys=True) + "\n")
    return path


def load_run(run_id: str, runs_dir: Path | None = None) -> list[SentEvent]:
    runs_dir = runs_dir or default_runs_dir()
    path = runs_dir / f"{run_id}.jsonl"
    if not path.exists():
        raise SendError(f"no run {run_id!r} in {runs_dir} (runs are recorded by `lab send`)")
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            events.append(SentEvent(**json.loads(line)))
    return events


def read_keys_file(path: Path) -> list[str]:
    """Keys one per line (blank lines and # comments ignored), or a run file's JSON lines."""
    keys = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        keys.append(json.loads(text)["idempotency_key"] if text.startswith("{") else text)
    return keys
