"""Where a DLQ message goes on a redrive: one pure decision, shared by preview and move."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from functions.common.names import ErrorType
from functions.redrive.dlq import DlqMessage
from functions.redrive.params import RedriveParams


class Route(StrEnum):
    SKIP = "skip"  # stays in the DLQ, visible again at once
    MAIN = "main"  # back to the main queue, redrive count + 1
    QUARANTINE = "quarantine"  # parked: its redrive count reached the limit; its key is marked QUARANTINED
    # Parked too, its key's record untouched: an idempotency conflict would only conflict again on
    # the main queue, and the key's record belongs to the payload that came first.
    CONFLICT = "conflict"


# Error types that another delivery can never fix: never sent back to the main queue.
NEVER_RETRIED = frozenset({ErrorType.IDEMPOTENCY_CONFLICT.value})


@dataclass(frozen=True)
class RoutingPolicy:
    params: RedriveParams
    max_redrives_per_message: int

    def route(self, message: DlqMessage, error_type: str | None, now: float) -> Route:
        """error_type: the message's own (errorType attribute) or its key's recorded one; None if neither."""
        if message.age_seconds(now) < self.params.min_age_seconds or not self.params.selects(error_type):
            return Route.SKIP
        if error_type in NEVER_RETRIED:
            return Route.CONFLICT
        if message.redrive_count >= self.max_redrives_per_message:
            return Route.QUARANTINE
        return Route.MAIN
