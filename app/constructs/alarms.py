"""The alarm factory: every alarm notifies the alarm topic (ALARM and OK) and links its runbook."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_sns as sns
from constructs import Construct


@dataclass(frozen=True)
class AlarmSpec:
    """What one alarm watches; periods and notification wiring come from the factory."""

    slug: str
    metric: cloudwatch.IMetric
    threshold: float
    summary: str
    runbook: str
    comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
    # Missing SQS/Lambda datapoints mean "nothing happened", never a reason to page.
    treat_missing_data: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING


class AlarmFactory(Construct):
    """Builds alarms named `<name_prefix>-<slug>` over the same period and evaluation periods, each
    notifying `topic` and linking `<runbooks_url>/<runbook>.md`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name_prefix: str,
        period_seconds: int,
        evaluation_periods: int,
        runbooks_url: str,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self._name_prefix = name_prefix
        self._period_seconds = period_seconds
        self._evaluation_periods = evaluation_periods
        self._runbooks_url = runbooks_url
        self._action = actions.SnsAction(topic)
        self.alarms: dict[str, cloudwatch.Alarm] = {}

    def alarm_name(self, slug: str) -> str:
        return f"{self._name_prefix}-{slug}"

    def create(self, spec: AlarmSpec) -> cloudwatch.Alarm:
        period = Duration.seconds(self._period_seconds)
        window = self._period_seconds * self._evaluation_periods
        alarm = cloudwatch.Alarm(
            self,
            spec.slug,
            alarm_name=self.alarm_name(spec.slug),
            alarm_description=(
                f"{spec.summary} (threshold {spec.threshold:g} over {window} s). "
                f"Runbook: {self._runbooks_url}/{spec.runbook}.md"
            ),
            metric=spec.metric.with_(period=period)
            if isinstance(spec.metric, cloudwatch.Metric)
            else spec.metric,
            threshold=spec.threshold,
            comparison_operator=spec.comparison,
            evaluation_periods=self._evaluation_periods,
            datapoints_to_alarm=self._evaluation_periods,
            treat_missing_data=spec.treat_missing_data,
        )
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        self.alarms[spec.slug] = alarm
        return alarm
