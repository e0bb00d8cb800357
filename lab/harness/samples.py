"""Sample events for `make lab` and `lab up --sample-events`, followed to SUCCEEDED and shown as
the state table holds them. Sent and read through the stage client, like every other caller."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from lab.harness.cdk import DeployError
from stage_client.send import send_payloads
from stage_client.target import Target
from stage_client.verify import fetch_statuses, verify_keys


def send_sample_events(
    target: Target, count: int, *, timeout: float = 60.0, log: Callable[[str], None] = print
) -> list[dict[str, Any]]:
    """POST sample events and wait until the worker recorded each one SUCCEEDED in the table."""
    run = uuid.uuid4().hex[:8]
    # The event schema of functions.common.payload: orderId and amount are required.
    payloads = [{"orderId": f"lab-sample-{run}-{index}", "amount": 42.5 + index} for index in range(count)]
    keys = [event.idempotency_key for event in send_payloads(target, payloads)]
    report = verify_keys(target, keys, timeout_s=timeout)
    if not report.ok:
        raise DeployError(f"sample events not SUCCEEDED within {timeout:.0f} s: {report.summary()}")
    rows = fetch_statuses(target, keys)
    log(f"{'idempotencyKey':<66} {'status':<10} attempts  processedAt")
    for key in keys:
        row = rows[key]
        log(
            f"{key:<66} {row.get('status', ''):<10} {row.get('attempts', ''):<9} {row.get('processedAt', '')}"
        )
    return [rows[key] for key in keys]
