"""What a drill is (its run function, defaults, time budget) and how long a stage takes to show
what the drills wait for (a message's trips to the DLQ, an alarm's evaluation)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from functions.common.names import Output
from stage_client.status import queue_alarms, stage_alarms
from stage_client.target import Target

if TYPE_CHECKING:
    from lab.gamedays.runner import DrillContext

# Room for the sends, the redrive job and the final verification on top of the waits.
BUDGET_MARGIN_S = 120


class DlqTrips(Protocol):
    """How many times main queue -> DLQ a drill waits for a failing message to travel."""

    def count(self, max_redrives: int) -> int: ...


@dataclass(frozen=True)
class Trips:
    """A fixed number of trips."""

    trips: int

    def count(self, max_redrives: int) -> int:
        return self.trips


@dataclass(frozen=True)
class UntilQuarantined:
    """One trip per redrive the stage allows, plus the last one before the quarantine."""

    def count(self, max_redrives: int) -> int:
        return max_redrives + 1


@dataclass(frozen=True)
class StageTiming:
    """How long the stage takes to move a failing message to the DLQ and to flip an alarm."""

    dlq_trip_s: float
    alarm_s: float


@dataclass(frozen=True, kw_only=True)
class DrillSpec:
    """One drill: what it runs and its defaults. A stage with slower settings than the local one
    gets a longer default time budget, scaled by what the drill waits for."""

    run: Callable[[DrillContext], list[str]]
    summary: str
    default_events: int
    default_timeout_s: float
    # The stage has an FIS experiment template for this drill's fault (AWS only).
    fis: bool = False
    dlq_trips: DlqTrips = Trips(0)
    waits_for_alarms: bool = False

    def budget_s(self, timing: StageTiming, max_redrives: int) -> float:
        trips = self.dlq_trips.count(max_redrives)
        alarms = 2 * timing.alarm_s if self.waits_for_alarms else 0
        return max(self.default_timeout_s, trips * timing.dlq_trip_s + alarms + BUDGET_MARGIN_S)


def stage_timing(target: Target) -> StageTiming:
    """From the main queue's visibility timeout and redrive policy, and the DLQ alarms' periods."""
    attributes = target.client("sqs").get_queue_attributes(
        QueueUrl=target.output(Output.QUEUE_URL), AttributeNames=["VisibilityTimeout", "RedrivePolicy"]
    )["Attributes"]
    # SQS's own defaults where the queue does not say: VisibilityTimeout 30 s; a redrive policy
    # without maxReceiveCount is refused by SQS, 5 is the stage's usual setting.
    visibility = int(attributes.get("VisibilityTimeout", 30))
    receives = int(json.loads(attributes.get("RedrivePolicy", "{}")).get("maxReceiveCount", 5))
    dlq_name = target.optional_output(Output.DLQ_NAME) or ""
    alarms = queue_alarms(stage_alarms(target), dlq_name)
    alarm_s = max((a.period_s * a.evaluation_periods for a in alarms), default=300)
    return StageTiming(dlq_trip_s=visibility * (receives + 1), alarm_s=float(alarm_s))
