"""The post-deploy smoke check: accept an event, see it SUCCEEDED, reach the redrive preview."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from stage_client.api import ApiError, call_api
from stage_client.send import new_run_id, sample_payload
from stage_client.target import Target
from stage_client.verify import verify_keys


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class SmokeReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [asdict(check) for check in self.checks]}


def run_smoke(
    target: Target, *, timeout_s: float = 60.0, on_check: Callable[[Check], None] | None = None
) -> SmokeReport:
    report = SmokeReport()

    def record(name: str, ok: bool, detail: str) -> bool:
        check = Check(name, ok, detail)
        report.checks.append(check)
        if on_check:
            on_check(check)
        return ok

    payload = sample_payload(new_run_id("smoke"), 0)
    try:
        accepted = call_api(target, "POST", "/events", body=payload)
    except ApiError as error:
        record("POST /events -> 202", False, str(error))
        return report
    key = accepted.field("idempotencyKey")
    if not record(
        "POST /events -> 202",
        accepted.status == 202 and bool(key),
        f"{accepted.status} {accepted.body!r} in {accepted.elapsed_ms:.0f} ms",
    ):
        return report
    started = time.monotonic()
    verified = verify_keys(target, [str(key)], timeout_s=timeout_s)
    record(
        "record SUCCEEDED",
        verified.ok,
        f"{key} {'SUCCEEDED' if verified.ok else verified.summary()} after {time.monotonic() - started:.1f}s",
    )
    preview = call_api(target, "GET", "/redrive/preview", query={"maxMessages": 1})
    record(
        "GET /redrive/preview -> 200",
        preview.status == 200,
        f"{preview.status} in {preview.elapsed_ms:.0f} ms",
    )
    return report
