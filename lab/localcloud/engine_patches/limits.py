"""Settings of the engine's patches that the lab's tests and harness read too: this module imports
nothing of ministack, so the lab's own interpreter can import it."""

from __future__ import annotations

# Environments serving one function's asynchronous-invocation queue (async_invocations).
ASYNC_CONCURRENCY_ENV = "LAB_ASYNC_CONCURRENCY"
DEFAULT_ASYNC_CONCURRENCY = 2

# Each queue's oldest message per receive count (queue_summary), read by the agent.
OLDEST_MESSAGES_PATH = "/_lab/sqs/oldest-messages"

# The engine's GIL switch interval in ms (engine_main.switch_interval_seconds; CPython's default is
# 5): the bench's drain of 1,000 on 2 cores, agent stopped, went from 16.0-17.4 msg/s at 5 ms to
# 19.5-19.7 at 0.5 (docs/performance.md, "What changed").
SWITCH_INTERVAL_ENV = "LAB_ENGINE_SWITCH_INTERVAL_MS"
DEFAULT_SWITCH_INTERVAL_MS = "0.5"
