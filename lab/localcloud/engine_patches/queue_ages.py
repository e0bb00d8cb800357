"""Each queue's oldest message per receive count, from the engine's stored messages (queue_summary);
imports nothing of ministack, so the unit tier checks it against the agent's own rule."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def oldest_by_receive_count(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, int]]:
    """One {"ReceiveCount", "SentTimestamp"} entry per receive count present, the oldest send time
    of the messages with that count (ministack's messages: receive_count, sent_at in seconds)."""
    oldest: dict[int, float] = {}
    for message in messages:
        count = int(message.get("receive_count") or 0)
        sent = float(message.get("sent_at") or 0)
        if count not in oldest or sent < oldest[count]:
            oldest[count] = sent
    return [{"ReceiveCount": count, "SentTimestamp": int(sent)} for count, sent in sorted(oldest.items())]
