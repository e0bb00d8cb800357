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
on a timer, not in a consumer, so one failing event does not hold the queue. An error of the engine
itself (a worker that cannot start) is retried like a throttle: AWS retries system errors until the
event's maximum age. The function is looked up again at each attempt, in its own account.
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

from .engine_hooks import LOG, require, require_state
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
    """One queued invocation: the function (looked up again at each attempt, so a deployment or a
    concurrency change while it waits is seen, as on AWS), the event, and how it has fared."""

    function_ref: str
    account: str
    region: str
    event: Any
    queued_at: float = field(default_factory=time.time)
    failed_attempts: int = 0
    # Throttles and engine errors: retried until the event's maximum age, not counted as attempts.
    deferrals: int = 0


def _invoke_config(record: dict[str, Any]) -> dict[str, Any]:
    configs = record.get("event_invoke_configs") or {}
    return dict(record.get("event_invoke_config") or configs.get("$LATEST") or {})


def consumers_for(record: dict[str, Any], limit: int) -> int:
    """The function's environments serving its queue: the local limit, or fewer when its reserved
    concurrency is lower (at 0 every invocation is throttled and retried until its maximum age)."""
    reserved = lambda_svc._reserved_concurrency(record, record.get("config") or {})
    if reserved is not None and reserved >= 1:
        return min(limit, reserved)
    return limit


def retry_delay(attempt: int) -> float:
    """ministack's async retry spacing (scaled down from AWS's minutes): base, 2 x base, 4 x base, ...
    up to its maximum."""
    return float(
        min(
            lambda_svc._LAMBDA_ASYNC_RETRY_BASE_SECONDS * 2 ** max(0, attempt - 1),
            lambda_svc._LAMBDA_ASYNC_RETRY_MAX_SECONDS,
        )
    )


class FunctionQueue:
    """The asynchronous-invocation queue of one function, and its consumer threads."""

    def __init__(self, name: str, consumers: int) -> None:
        self.name = name
        self._events: queue.Queue[AsyncEvent] = queue.Queue()
        for index in range(consumers):
            threading.Thread(target=self._consume, daemon=True, name=f"lab-async-{name}-{index}").start()

    def put(self, item: AsyncEvent) -> None:
        self._events.put(item)

    def _consume(self) -> None:
        while True:
            item = self._events.get()
            # Every step in the function's account and region (its lookup, its invocation, its
            # on-failure destination), as ministack's own async path sets them.
            context = contextvars.copy_context()
            try:
                context.run(self._in_scope, item)
            except Exception as error:  # an engine error is a system error: AWS retries it
                LOG.exception("async invocation of %s failed in the engine", self.name)
                context.run(self._defer, item, {"error": True, "body": {"errorMessage": repr(error)}})

    def _in_scope(self, item: AsyncEvent) -> None:
        lambda_svc._request_account_id.set(item.account)
        lambda_svc._request_region.set(item.region)
        self._attempt(item)

    def _attempt(self, item: AsyncEvent) -> None:
        func, config, _name = lambda_svc._get_func_record_for_ref(item.function_ref)
        if not func or not config:
            # AWS discards the queued events of a deleted function.
            LOG.warning("async invocation of %s dropped: the function no longer exists", self.name)
            return
        record = lambda_svc._execution_record_for_config(func, config)
        result = lambda_svc._execute_function(record, item.event)
        if not result.get("error"):
            return
        if result.get("throttle"):
            self._defer(item, result, record)
            return
        item.failed_attempts += 1
        retries = _invoke_config(record).get("MaximumRetryAttempts")
        if item.failed_attempts > (DEFAULT_RETRY_ATTEMPTS if retries is None else int(retries)):
            self._give_up(item, result, record)
            return
        self._later(item, retry_delay(item.failed_attempts), result, record)

    def _defer(self, item: AsyncEvent, result: dict[str, Any], record: dict[str, Any] | None = None) -> None:
        item.deferrals += 1
        self._later(item, retry_delay(item.deferrals), result, record)

    def _later(
        self, item: AsyncEvent, delay: float, result: dict[str, Any], record: dict[str, Any] | None
    ) -> None:
        settings = _invoke_config(record) if record else {}
        max_age = int(settings.get("MaximumEventAgeInSeconds", DEFAULT_MAX_EVENT_AGE_SECONDS))
        if time.time() + delay - item.queued_at > max_age:
            self._give_up(item, result, record)
            return
        timer = threading.Timer(delay, self.put, args=(item,))
        timer.daemon = True
        timer.start()

    def _give_up(self, item: AsyncEvent, result: dict[str, Any], record: dict[str, Any] | None) -> None:
        config = (record or {}).get("config") or {}
        settings = _invoke_config(record) if record else {}
        on_failure = (settings.get("DestinationConfig") or {}).get("OnFailure", {}).get("Destination") or (
            config.get("DeadLetterConfig") or {}
        ).get("TargetArn")
        LOG.warning(
            "async invocation of %s given up after %d failed attempts and %d deferrals%s",
            self.name,
            item.failed_attempts,
            item.deferrals,
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
        account, region = lambda_svc._account_region_from_function_config(config)
        arn = str(config.get("FunctionArn") or arn)
        invoker.queue_for(record).put(AsyncEvent(arn, account, region, event))

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
        "_execute_function",
        "_account_region_from_function_config",
    )
    require_state(lambda_svc, "_request_account_id", "_request_region")
    if not hasattr(lambda_svc, "_LAMBDA_ASYNC_RETRY_BASE_SECONDS"):
        raise SystemExit("engine_patches: ministack has no async retry spacing: update async_invocations")
    eventbridge._dispatch_to_lambda = dispatch_queued(AsyncInvoker(concurrency_limit()))
