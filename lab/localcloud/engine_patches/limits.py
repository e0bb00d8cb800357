"""Settings of the engine's patches that the lab's tests and harness read too: this module imports
nothing of ministack, so the lab's own interpreter can import it."""

from __future__ import annotations

# Environments serving one function's asynchronous-invocation queue (async_invocations).
ASYNC_CONCURRENCY_ENV = "LAB_ASYNC_CONCURRENCY"
DEFAULT_ASYNC_CONCURRENCY = 2

# Each queue's oldest message per receive count (queue_summary), read by the agent.
OLDEST_MESSAGES_PATH = "/_lab/sqs/oldest-messages"
