"""What a drill is (its run function, defaults, time budget) and how long a stage takes to show
what the drills wait for (a message's trips to the DLQ, an alarm's evaluation)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
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


# When the stage has no alarm on its DLQ: CloudWatch's default period (60 s) x 5, the stage's default.
DEFAULT_ALARM_S = 300.0
AGE_OF_OLDEST = "ApproximateAgeOfOldestMessage"


@dataclass(frozen=True)
class AlarmWindow:
    """How long one alarm takes to change state: the periods it evaluates and, for an age-of-oldest
    alarm on a DLQ, the age a message must first reach there. (A DLQ's ApproximateAgeOfOldestMessage
    counts from when the message moved to it: SQS Developer Guide, "Setting up dead-letter queue
    retention".)"""

    period_s: int
    evaluation_periods: int
    age_threshold_s: float = 0.0

    @classmethod
    def of(cls, metric: str, period_s: int, evaluation_periods: int, threshold: float) -> AlarmWindow:
        return cls(period_s, evaluation_periods, threshold if metric == AGE_OF_OLDEST else 0.0)

    @property
    def to_alarm_s(self) -> float:
        return self.age_threshold_s + self.period_s * self.evaluation_periods

    @property
    def to_ok_s(self) -> float:
        return float(self.period_s * self.evaluation_periods)


@dataclass(frozen=True)
class StageTiming:
    """How long the stage takes to move a failing message to the DLQ, to raise its DLQ alarms and to
    clear them."""

    dlq_trip_s: float
    alarm_s: float
    ok_s: float

    @classmethod
    def of(
        cls, *, visibility_s: float, max_receive_count: int, dlq_alarms: Iterable[AlarmWindow]
    ) -> StageTiming:
        """One formula for a deployed stage (stage_timing) and a synthesized one (the time-budget
        test): a message is received max_receive_count times, each visible again after the
        visibility timeout, before SQS moves it (one period of margin)."""
        windows = list(dlq_alarms)
        return cls(
            dlq_trip_s=visibility_s * (max_receive_count + 1),
            alarm_s=max((w.to_alarm_s for w in windows), default=DEFAULT_ALARM_S),
            ok_s=max((w.to_ok_s for w in windows), default=DEFAULT_ALARM_S),
        )


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
    # The drill counts events on the event audit queue (a stage deployed with eventAudit true).
    counts_events: bool = False

    def budget_s(self, timing: StageTiming, max_redrives: int) -> float:
        trips = self.dlq_trips.count(max_redrives)
        alarms = timing.alarm_s + timing.ok_s if self.waits_for_alarms else 0
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
    windows = [AlarmWindow.of(a.metric, a.period_s, a.evaluation_periods, a.threshold) for a in alarms]
    return StageTiming.of(visibility_s=visibility, max_receive_count=receives, dlq_alarms=windows)
