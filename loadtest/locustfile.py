"""Locust load for POST /events: unique payloads (throughput) and re-sent payloads (duplicate submit).

Every accepted payload's idempotencyKey is appended to a keys file (JSON lines) that `loadtest.gate`
checks against the stage after the run: one SUCCEEDED record per unique payload, none missing.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any

from locust import FastHttpUser, constant_throughput, events, task
from locust.env import Environment

from loadtest.keyfile import DUPLICATE_REQUEST_NAME, KIND_POOL, KIND_UNIQUE, UNIQUE_REQUEST_NAME, KeyLog
from stage_client.target import API_KEY_ENV, resolve_target

EVENTS_PATH = "/events"


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--run-id",
        env_var="LOADTEST_RUN_ID",
        default="",
        help="carried by every payload (runId) so a run's records can be found; default: random",
    )
    parser.add_argument(
        "--keys-file",
        env_var="LOADTEST_KEYS_FILE",
        default="reports/loadtest/keys.jsonl",
        help="JSON lines {kind, idempotency_key} appended for every accepted unique payload and pool entry",
    )
    parser.add_argument(
        "--duplicate-pool-size",
        type=int,
        env_var="LOADTEST_DUPLICATE_POOL_SIZE",
        default=20,
        help="distinct payloads the duplicate-submit user re-sends",
    )
    parser.add_argument(
        "--rps-per-user",
        type=float,
        env_var="LOADTEST_RPS_PER_USER",
        default=0.0,
        help="requests per second per user (0: as fast as the API answers)",
    )
    parser.add_argument(
        "--api-key",
        env_var=API_KEY_ENV,
        default="",
        is_secret=True,
        help="x-api-key header for a stage in authMode apiKey",
    )


class _RunSettings:
    run_id: str = ""
    rps_per_user: float = 0.0
    headers: dict[str, str] = {}
    pool: list[dict[str, Any]] = []
    # The key the API returned for each pool entry: a re-send must get the same key back.
    pool_keys: dict[int, str] = {}


KEY_LOG = KeyLog()


def pool_payload(run_id: str, index: int) -> dict[str, Any]:
    """The duplicate-submit pool is derived from the run id so every Locust process shares it."""
    return {"orderId": f"{run_id}-pool-{index}", "amount": index + 0.5, "runId": run_id}


def unique_payload(run_id: str) -> dict[str, Any]:
    return {
        "orderId": f"{run_id}-{uuid.uuid4().hex}",
        # Not security-sensitive: the amount only varies the payload.
        "amount": round(random.uniform(1, 1000), 2),  # noqa: S311
        "runId": run_id,
    }


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is None:  # Locust used as a library without a command line: nothing to configure.
        return
    api_key = options.api_key
    if not environment.host:
        # No --host: load the lab's target (LAB_TARGET, default the local cloud).
        target = resolve_target()
        environment.host = target.api_url
        api_key = api_key or target.api_key or ""
    _RunSettings.run_id = options.run_id or uuid.uuid4().hex[:12]
    _RunSettings.rps_per_user = options.rps_per_user
    _RunSettings.headers = {"content-type": "application/json"}
    if api_key:
        _RunSettings.headers["x-api-key"] = api_key
    _RunSettings.pool = [pool_payload(_RunSettings.run_id, i) for i in range(options.duplicate_pool_size)]
    KEY_LOG.open(Path(options.keys_file))


@events.quitting.add_listener
def _on_quit(**_: Any) -> None:
    KEY_LOG.close()


def accepted_key(response: Any) -> str | None:
    """The idempotencyKey of a 202 response, or None after marking the request failed."""
    if response.status_code != 202:
        response.failure(f"expected 202, got {response.status_code}: {(response.text or '')[:200]}")
        return None
    try:
        key = response.json()["idempotencyKey"]
    except (ValueError, KeyError, TypeError):
        response.failure(f"202 without an idempotencyKey: {(response.text or '')[:200]}")
        return None
    if not isinstance(key, str) or not key:
        response.failure(f"202 with an invalid idempotencyKey: {key!r}")
        return None
    return key


class _IngestUser(FastHttpUser):
    abstract = True

    def wait_time(self) -> float:
        # Locust's wait-time helpers are bound at class creation, before the command line is parsed.
        if _RunSettings.rps_per_user > 0:
            return float(constant_throughput(_RunSettings.rps_per_user)(self))
        return 0.0

    def _post(self, payload: dict[str, Any], name: str) -> Any:
        return self.client.post(
            EVENTS_PATH, json=payload, headers=_RunSettings.headers, name=name, catch_response=True
        )


class ThroughputUser(_IngestUser):
    """Sends only unique payloads: every 202 must end as one SUCCEEDED record."""

    weight = 3

    @task
    def send_unique(self) -> None:
        with self._post(unique_payload(_RunSettings.run_id), UNIQUE_REQUEST_NAME) as response:
            key = accepted_key(response)
            if key is not None:
                KEY_LOG.record(KIND_UNIQUE, key)


class DuplicateSubmitUser(_IngestUser):
    """Re-sends payloads from the shared pool: the API must return the same key, the worker dedupes."""

    weight = 1

    @task
    def resend_from_pool(self) -> None:
        if not _RunSettings.pool:
            return
        index = random.randrange(len(_RunSettings.pool))  # noqa: S311
        with self._post(_RunSettings.pool[index], DUPLICATE_REQUEST_NAME) as response:
            key = accepted_key(response)
            if key is None:
                return
            known = _RunSettings.pool_keys.get(index)
            if known is None:
                _RunSettings.pool_keys[index] = key
                KEY_LOG.record(KIND_POOL, key)
            elif known != key:
                response.failure(
                    f"pool payload {index} got key {key}, earlier {known}: a re-send keeps its key"
                )
