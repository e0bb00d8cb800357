"""A peek at each queue's oldest messages, by receive count, without the messages themselves.

The lab's agent publishes ApproximateAgeOfOldestMessage, which AWS computes and ministack does not;
it needs each queue's oldest SentTimestamp among the messages received fewer than three times (Amazon
SQS Developer Guide, "Available CloudWatch metrics for Amazon SQS": a message received three times or
more is moved to the back of the queue for this metric). ministack's own peek,
`GET /_ministack/sqs/messages`, renders every message of every queue (bodies and attributes) as one
JSON document on the engine's event loop: with a 2,000-message backlog, every 2 s, it was the largest
share of the engine's time in the drain profile (docs/performance.md) and delayed every request
behind it.

`GET /_lab/sqs/oldest-messages` answers in the same shape (accounts -> regions -> queue URL -> list)
with one entry per receive count present in the queue: {"ReceiveCount": n, "SentTimestamp": the
oldest message's}. The minimum over the counts below a limit equals the minimum over the messages, so
lab.localcloud.agent.oldest_message_age reads either. Like the peek, it changes nothing in a queue.
Conformance: tests/local/engine/test_alarm_agent.py (the age published while a backlog waits).
"""

from __future__ import annotations

import json
import os
from typing import Any

from ministack import app
from ministack.services import sqs

from .engine_hooks import require
from .limits import OLDEST_MESSAGES_PATH
from .queue_ages import oldest_by_receive_count

_JSON = {"Content-Type": "application/json"}


def summary() -> dict[str, Any]:
    by_account: dict[str, dict[str, dict[str, list[dict[str, int]]]]] = {}
    for scoped_key, queue in sqs._queues.to_dict().items():
        if not isinstance(queue, dict):
            continue
        if len(scoped_key) == 3:
            account, region, url = scoped_key
        elif len(scoped_key) == 2:
            # ministack's legacy account-scoped keys: its own peek gives these the engine's region.
            (account, url), region = scoped_key, os.environ.get("MINISTACK_REGION", "us-east-1")
        else:
            continue
        # A copy: the engine's other threads add and remove messages meanwhile.
        messages = list(queue.get("messages") or [])
        by_account.setdefault(account, {}).setdefault(region, {})[url] = oldest_by_receive_count(messages)
    return {"messages": by_account}


def with_oldest_messages(original: Any) -> Any:
    async def handle(method: str, path: str, headers: dict[str, Any], query_params: dict[str, Any]) -> Any:
        if path == OLDEST_MESSAGES_PATH and method == "GET":
            return 200, dict(_JSON), json.dumps(summary()).encode()
        return await original(method, path, headers, query_params)

    return handle


def install() -> None:
    require(app, "_handle_sqs_messages_request")
    if not hasattr(sqs._queues, "to_dict"):
        raise SystemExit("engine_patches: ministack's SQS queues have no to_dict(): update queue_summary")
    app._handle_sqs_messages_request = with_oldest_messages(app._handle_sqs_messages_request)
