"""The redrive routes of the API: preview, start (asynchronous job), status, cancel, and waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stage_client.api import ApiResponse, call_api
from stage_client.target import Target

TERMINAL_STATUSES = frozenset({"SUCCEEDED", "CANCELLED", "FAILED"})
COUNTERS = ("received", "moved", "skipped", "quarantined", "failed")


class RedriveError(RuntimeError):
    """The API refused a redrive request or a job did not finish as expected."""


@dataclass(frozen=True)
class RedriveParams:
    max_messages: int = 100
    filter_error_type: str | None = None
    min_age_seconds: int | None = None
    per_message_delay_jitter: int | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"maxMessages": self.max_messages}
        if self.filter_error_type:
            body["filterErrorType"] = self.filter_error_type
        if self.min_age_seconds is not None:
            body["minAgeSeconds"] = self.min_age_seconds
        if self.per_message_delay_jitter is not None:
            body["perMessageDelayJitter"] = self.per_message_delay_jitter
        return body


def _expect(response: ApiResponse, statuses: tuple[int, ...], what: str) -> dict[str, Any]:
    if response.status not in statuses or not isinstance(response.body, dict):
        raise RedriveError(f"{what} answered {response.status}: {response.body!r}")
    return response.body


def preview(
    target: Target,
    *,
    max_messages: int = 10,
    error_type: str | None = None,
    min_age_seconds: int | None = None,
) -> dict[str, Any]:
    response = call_api(
        target,
        "GET",
        "/redrive/preview",
        query={"maxMessages": max_messages, "errorType": error_type, "minAgeSeconds": min_age_seconds},
    )
    return _expect(response, (200,), "GET /redrive/preview")


def preview_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The sampled messages of a preview answer."""
    for key in ("messages", "samples", "items"):
        if isinstance(body.get(key), list):
            return list(body[key])
    return []


def start(target: Target, params: RedriveParams) -> dict[str, Any]:
    response = call_api(target, "POST", "/redrive/start", body=params.body(), retries=0)
    body = _expect(response, (202, 200), "POST /redrive/start")
    if not body.get("jobId"):
        raise RedriveError(f"POST /redrive/start returned no jobId: {body!r}")
    return body


def status(target: Target, job_id: str) -> dict[str, Any]:
    return _expect(
        call_api(target, "GET", "/redrive/status", query={"jobId": job_id}), (200,), "GET /redrive/status"
    )


def cancel(target: Target, job_id: str) -> dict[str, Any]:
    response = call_api(target, "POST", "/redrive/cancel", body={"jobId": job_id})
    return _expect(response, (200, 202), "POST /redrive/cancel")


def counters(job: dict[str, Any]) -> dict[str, int]:
    """received/moved/skipped/quarantined/failed of a job record (nested or top-level)."""
    source = job.get("counters") if isinstance(job.get("counters"), dict) else job
    assert isinstance(source, dict)
    return {name: int(source.get(name, 0) or 0) for name in COUNTERS}


def describe(job: dict[str, Any]) -> str:
    numbers = ", ".join(f"{name} {value}" for name, value in counters(job).items())
    return f"job {job.get('jobId')} {job.get('status')}: {numbers}"


def wait(
    target: Target,
    job_id: str,
    *,
    timeout_s: float = 300.0,
    interval_s: float = 1.0,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Follow a job until it ends; RedriveError when it does not end in time."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = status(target, job_id)
        if on_progress:
            on_progress(last)
        if str(last.get("status")) in TERMINAL_STATUSES:
            return last
        time.sleep(interval_s)
    raise RedriveError(f"redrive job {job_id} did not finish within {timeout_s:.0f}s (last: {last!r})")
