"""EventBridge invokes a Lambda target asynchronously: through a queue that a bounded number of the
function's execution environments drain, with Lambda's retries.

What ministack 1.5.33 does: every rule delivery to a Lambda target starts a thread that invokes the
function at once (`eventbridge._dispatch_to_lambda`). Under load each delivery is one more
concurrent invocation, and the local executor starts a worker process for every invocation that
finds no free one: a cold start each (the code unzipped, an interpreter started, the handler
imported). Measured on the bench's drain of 1,000 events: ~50 event-log processes, and 35% of the
engine's CPU in `Worker._spawn`. A throttled invocation (reserved concurrency) or a failed one is
dropped: no retry.

What AWS does (AWS Lambda Developer Guide, "Invoking a Lambda function asynchronously" and "How
Lambda handles errors and retries with asynchronous invocation"; Amazon EventBridge User Guide,
"Targets": EventBridge invokes Lambda asynchronously): "Lambda places the event in a queue and
returns a success response ... A separate process reads events from the queue and sends them to
your function." A function error is retried twice by default (MaximumRetryAttempts), then the event
goes to the function's on-failure destination or dead-letter queue; an event throttled by the
function's concurrency is returned to the queue and retried until MaximumEventAgeInSeconds (6 hours
by default). Events may be handled in any order.

This patch gives the engine that queue: deliveries are queued per function and served by at most
`consumers_for()` threads per function (LAB_ASYNC_CONCURRENCY, default 2, never above the function's
reserved concurrency), so the function keeps that many warm environments however many events
arrive. Errors are retried with ministack's own (scaled-down) async backoff and then routed with its
`_route_async_failure`; throttles are retried until the event's maximum age, as on AWS. A retry waits
on a timer, not in a consumer, so one failing event does not hold the queue.
Conformance: tests/local/engine/test_async_invocations.py.
"""

from __future__ import annotations

import contextvars
import json
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ministack.services import eventbridge, lambda_svc

from .engine_hooks import LOG, require
from .limits import ASYNC_CONCURRENCY_ENV, DEFAULT_ASYNC_CONCURRENCY

DEFAULT_RETRY_ATTEMPTS = 2
DEFAULT_MAX_EVENT_AGE_SECONDS = 21_600


def concurrency_limit() -> int:
    raw = os.environ.get(ASYNC_CONCURRENCY_ENV, "")
    try:
        value = int(raw) if raw else DEFAULT_ASYNC_CONCURRENCY
    except ValueError:
        raise SystemExit(f"engine_patches: {ASYNC_CONCURRENCY_ENV} must be an integer, got {raw!r}") from None
    if value < 1:
        raise SystemExit(f"engine_patches: {ASYNC_CONCURRENCY_ENV} must be at least 1, got {value}")
    return value


@dataclass
class AsyncEvent:
    """One queued invocation: what to run, and how often it has been tried."""

    record: dict[str, Any]
    event: Any
    queued_at: float = field(default_factory=time.time)
    failed_attempts: int = 0


def _invoke_config(record: dict[str, Any]) -> dict[str, Any]:
    configs = record.get("event_invoke_configs") or {}
    return dict(record.get("event_invoke_config") or configs.get("$LATEST") or {})


def consumers_for(record: dict[str, Any], limit: int) -> int:
    """The function's environments serving its queue: the local limit, or fewer when its reserved
    concurrency is lower (0 leaves one consumer, whose invocations are throttled and retried)."""
    reserved = lambda_svc._reserved_concurrency(record, record.get("config") or {})
    if reserved is not None and reserved >= 1:
        return min(limit, reserved)
    return limit


class FunctionQueue:
    """The asynchronous-invocation queue of one function, and its consumer threads."""

    def __init__(self, name: str, consumers: int) -> None:
        self.name = name
        self._events: queue.Queue[AsyncEvent] = queue.Queue()
        for index in range(consumers):
            threading.Thread(target=self._consume, daemon=True, name=f"lab-async-{name}-{index}").start()

    def put(self, item: AsyncEvent) -> None:
        self._events.put(item)

    def depth(self) -> int:
        return self._events.qsize()

    def _consume(self) -> None:
        while True:
            item = self._events.get()
            try:
                self._attempt(item)
            except Exception:  # a consumer must outlive any one event
                LOG.exception("async invocation of %s failed in the engine", self.name)

    def _attempt(self, item: AsyncEvent) -> None:
        # The function's account and region, as ministack's own async path sets them.
        result = contextvars.copy_context().run(
            lambda_svc._execute_function_with_config_scope, item.record, item.event
        )
        if not result.get("error"):
            return
        settings = _invoke_config(item.record)
        max_age = int(settings.get("MaximumEventAgeInSeconds", DEFAULT_MAX_EVENT_AGE_SECONDS))
        age = time.time() - item.queued_at
        if result.get("throttle"):
            delay = lambda_svc._LAMBDA_ASYNC_RETRY_BASE_SECONDS
        else:
            item.failed_attempts += 1
            retries = settings.get("MaximumRetryAttempts")
            allowed = DEFAULT_RETRY_ATTEMPTS if retries is None else int(retries)
            if item.failed_attempts > allowed:
                self._give_up(item, result)
                return
            delay = min(
                lambda_svc._LAMBDA_ASYNC_RETRY_BASE_SECONDS * 2 ** (item.failed_attempts - 1),
                lambda_svc._LAMBDA_ASYNC_RETRY_MAX_SECONDS,
            )
        if age + delay > max_age:
            self._give_up(item, result)
            return
        timer = threading.Timer(delay, self.put, args=(item,))
        timer.daemon = True
        timer.start()

    def _give_up(self, item: AsyncEvent, result: dict[str, Any]) -> None:
        config = item.record.get("config") or item.record
        settings = _invoke_config(item.record)
        on_failure = (settings.get("DestinationConfig") or {}).get("OnFailure", {}).get("Destination") or (
            config.get("DeadLetterConfig") or {}
        ).get("TargetArn")
        LOG.warning(
            "async invocation of %s given up after %d failed attempts%s",
            self.name,
            item.failed_attempts,
            f": sent to {on_failure}" if on_failure else " (no on-failure destination)",
        )
        if on_failure:
            lambda_svc._route_async_failure(on_failure, self.name, item.event, result)


class AsyncInvoker:
    """The queues of every function invoked asynchronously by a rule, made on first use."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._queues: dict[str, FunctionQueue] = {}
        self._lock = threading.Lock()

    def queue_for(self, record: dict[str, Any]) -> FunctionQueue:
        config = record.get("config") or record
        arn = str(config.get("FunctionArn") or config.get("FunctionName"))
        with self._lock:
            found = self._queues.get(arn)
            if found is None:
                name = str(config.get("FunctionName", arn))
                found = self._queues[arn] = FunctionQueue(name, consumers_for(record, self.limit))
            return found


def dispatch_queued(invoker: AsyncInvoker) -> Any:
    """`eventbridge._dispatch_to_lambda`, with the invocation queued instead of started."""

    def dispatch(arn: str, payload: str) -> None:
        try:
            event = json.loads(payload)
        except (ValueError, TypeError):
            event = {"body": payload}
        func, config, func_name = lambda_svc._get_func_record_for_ref(arn)
        if not func or not config:
            LOG.warning("EventBridge -> Lambda: function %s not found", func_name)
            return
        record = lambda_svc._execution_record_for_config(func, config)
        invoker.queue_for(record).put(AsyncEvent(record, event))

    return dispatch


def install() -> None:
    require(eventbridge, "_dispatch_to_lambda")
    require(
        lambda_svc,
        "_get_func_record_for_ref",
        "_execution_record_for_config",
        "_execute_function_with_config_scope",
        "_route_async_failure",
        "_reserved_concurrency",
    )
    if not hasattr(lambda_svc, "_LAMBDA_ASYNC_RETRY_BASE_SECONDS"):
        raise SystemExit("engine_patches: ministack has no async retry spacing: update async_invocations")
    eventbridge._dispatch_to_lambda = dispatch_queued(AsyncInvoker(concurrency_limit()))
