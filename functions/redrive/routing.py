"""Where a DLQ message goes on a redrive: one pure decision, shared by preview and move."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from functions.redrive.dlq import DlqMessage
from functions.redrive.params import RedriveParams


class Route(StrEnum):
    SKIP = "skip"  # stays in the DLQ, visible again at once
    MAIN = "main"  # back to the main queue, redrive count + 1
    QUARANTINE = "quarantine"  # parked: its redrive count reached the limit


@dataclass(frozen=True)
class RoutingPolicy:
    params: RedriveParams
    max_redrives_per_message: int

    def route(self, message: DlqMessage, error_type: str | None, now: float) -> Route:
        """error_type: the one recorded for the message's key (None when none is recorded)."""
        if message.age_seconds(now) < self.params.min_age_seconds:
            return Route.SKIP
        if self.params.filter_error_type is not None and error_type != self.params.filter_error_type:
            return Route.SKIP
        if message.redrive_count >= self.max_redrives_per_message:
            return Route.QUARANTINE
        return Route.MAIN
