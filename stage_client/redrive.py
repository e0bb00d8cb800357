"""The redrive routes of the API: preview, start (asynchronous job), status, cancel, and waiting.

Answers come back typed (RedrivePreview, RedriveJob) with the API's own JSON kept beside them, so
the CLI can print exactly what the API said.
"""

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


@dataclass(frozen=True)
class RedrivePreview:
    """A sample of the DLQ (nothing removed) and the limit the redrive function enforces."""

    messages: list[dict[str, Any]]
    max_redrives_per_message: int | None
    body: dict[str, Any]

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> RedrivePreview:
        limit = body.get("maxRedrivesPerMessage")
        return cls(
            messages=preview_messages(body),
            max_redrives_per_message=None if limit is None else int(limit),
            body=body,
        )


@dataclass(frozen=True)
class RedriveJob:
    """One redrive job as the API last described it."""

    job_id: str
    status: str
    counters: dict[str, int]
    body: dict[str, Any]

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> RedriveJob:
        return cls(
            job_id=str(body.get("jobId")),
            status=str(body.get("status")),
            counters=counters(body),
            body=body,
        )

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def describe(self) -> str:
        numbers = ", ".join(f"{name} {value}" for name, value in self.counters.items())
        return f"job {self.job_id} {self.status}: {numbers}"


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
) -> RedrivePreview:
    response = call_api(
        target,
        "GET",
        "/redrive/preview",
        query={"maxMessages": max_messages, "errorType": error_type, "minAgeSeconds": min_age_seconds},
    )
    return RedrivePreview.from_body(_expect(response, (200,), "GET /redrive/preview"))


def preview_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The sampled messages of a preview answer."""
    for key in ("messages", "samples", "items"):
        if isinstance(body.get(key), list):
            return list(body[key])
    return []


def start(target: Target, params: RedriveParams) -> RedriveJob:
    response = call_api(target, "POST", "/redrive/start", body=params.body(), retries=0)
    body = _expect(response, (202, 200), "POST /redrive/start")
    if not body.get("jobId"):
        raise RedriveError(f"POST /redrive/start returned no jobId: {body!r}")
    return RedriveJob.from_body(body)


def status(target: Target, job_id: str) -> RedriveJob:
    response = call_api(target, "GET", "/redrive/status", query={"jobId": job_id})
    return RedriveJob.from_body(_expect(response, (200,), "GET /redrive/status"))


def cancel(target: Target, job_id: str) -> RedriveJob:
    response = call_api(target, "POST", "/redrive/cancel", body={"jobId": job_id})
    return RedriveJob.from_body(_expect(response, (200, 202), "POST /redrive/cancel"))


def counters(job: dict[str, Any]) -> dict[str, int]:
    """received/moved/skipped/quarantined/failed of a job record (nested or top-level)."""
    nested = job.get("counters")
    source = nested if isinstance(nested, dict) else job
    return {name: int(source.get(name, 0) or 0) for name in COUNTERS}


def wait(
    target: Target,
    job_id: str,
    *,
    timeout_s: float = 300.0,
    interval_s: float = 1.0,
    on_progress: Callable[[RedriveJob], None] | None = None,
) -> RedriveJob:
    """Follow a job until it ends; RedriveError when it does not end in time."""
    deadline = time.monotonic() + timeout_s
    last: RedriveJob | None = None
    while time.monotonic() < deadline:
        last = status(target, job_id)
        if on_progress:
            on_progress(last)
        if last.finished:
            return last
        time.sleep(interval_s)
    seen = last.body if last is not None else {}
    raise RedriveError(f"redrive job {job_id} did not finish within {timeout_s:.0f}s (last: {seen!r})")
