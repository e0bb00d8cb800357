"""The stage's synthesized dashboard body, translated the way the local dashboard page translates it
(lab/localcloud/dashboard): every widget is drawable, every metric row becomes the query CloudWatch
would run for it, one refresh costs one GetMetricData and one DescribeAlarms call, and the alarm
widget shows every alarm of the stage.

CloudFormation resolves the body's references at deploy time; here they are resolved from the
templates (physical names are fixed: ingestion-<env>-...), so the queries name the real resources.
Rules: CloudWatch API Reference, "Dashboard Body Structure and Syntax", GetMetricData (500 queries
per call) and DescribeAlarms (100 names per call)."""

from __future__ import annotations

from typing import Any

from lab.localcloud.dashboard.queries import plan_alarms, plan_metric_data
from lab.localcloud.dashboard.widgets import (
    AlarmStatusWidget,
    Dashboard,
    MetricWidget,
    TextWidget,
    parse_body,
)
from tests.infra.synth import STACK_KINDS, SynthesizedStage

NAME_PROPERTIES = ("FunctionName", "QueueName", "Name", "AlarmName", "TableName", "TopicName")


class Resolver:
    """CloudFormation's resolution of the intrinsics a dashboard body holds, from the templates."""

    def __init__(self, stage: SynthesizedStage) -> None:
        self.stage = stage
        self.resources = {
            logical_id: resource
            for kind in STACK_KINDS
            for logical_id, resource in stage.raw[kind].get("Resources", {}).items()
        }
        self.exports = {
            output["Export"]["Name"]: output["Value"]
            for kind in STACK_KINDS
            for output in stage.raw[kind].get("Outputs", {}).values()
            if "Export" in output
        }

    def __call__(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        if "Fn::Join" in value:
            delimiter, parts = value["Fn::Join"]
            return str(delimiter).join(self(part) for part in parts)
        if "Fn::ImportValue" in value:
            return self(self.exports[value["Fn::ImportValue"]])
        if "Ref" in value:
            return self._ref(value["Ref"])
        if "Fn::GetAtt" in value:
            return self._attribute(*value["Fn::GetAtt"])
        raise AssertionError(f"unexpected intrinsic in the dashboard body: {value}")

    def _ref(self, logical_id: str) -> str:
        if logical_id == "AWS::Region":
            return self.stage.config.region
        props = self.resources[logical_id].get("Properties", {})
        return next(str(props[p]) for p in NAME_PROPERTIES if isinstance(props.get(p), str))

    def _attribute(self, logical_id: str, attribute: str) -> str:
        resource = self.resources[logical_id]
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::CloudWatch::Alarm" and attribute == "Arn":
            config = self.stage.config
            return f"arn:aws:cloudwatch:{config.region}:{config.account}:alarm:{props['AlarmName']}"
        return str(props[attribute])


def dashboard_of(stage: SynthesizedStage) -> Dashboard:
    (resource,) = stage.resources("observability", "AWS::CloudWatch::Dashboard").values()
    body = Resolver(stage)(resource["Properties"]["DashboardBody"])
    return parse_body(body, default_region=stage.config.region)


def test_every_widget_of_the_stage_is_drawn(any_stage: SynthesizedStage) -> None:
    dashboard = dashboard_of(any_stage)
    kinds = [type(widget) for widget in dashboard.widgets]
    assert set(kinds) == {TextWidget, MetricWidget, AlarmStatusWidget}, kinds
    problems = [
        (widget.title, series.label, series.error)
        for widget in dashboard.widgets
        if isinstance(widget, MetricWidget)
        for series in widget.series
        if series.error
    ]
    assert problems == []


def test_the_dlq_widget_asks_for_depth_and_age_of_the_stages_dlq(any_stage: SynthesizedStage) -> None:
    dashboard = dashboard_of(any_stage)
    (dlq_widget,) = [
        w for w in dashboard.widgets if isinstance(w, MetricWidget) and w.title.startswith("Queue DLQ")
    ]
    index = dashboard.widgets.index(dlq_widget)
    dlq_name = f"{any_stage.config.prefix}-events-dlq"
    queries = {
        query["MetricStat"]["Metric"]["MetricName"]: query
        for call in plan_metric_data(dashboard)
        for query_id, query in zip(call.refs, call.queries, strict=True)
        if call.refs[query_id].widget == index
    }
    for metric in ("ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"):
        stat = queries[metric]["MetricStat"]
        assert stat["Metric"]["Namespace"] == "AWS/SQS"
        assert stat["Metric"]["Dimensions"] == [{"Name": "QueueName", "Value": dlq_name}]
        assert (stat["Stat"], stat["Period"]) == ("Maximum", 60)
    age = next(s for s in dlq_widget.series if s.metric_name == "ApproximateAgeOfOldestMessage")
    assert age.y_axis == "right"


def test_one_refresh_of_the_stage_dashboard_is_one_call_of_each(any_stage: SynthesizedStage) -> None:
    dashboard = dashboard_of(any_stage)
    rows = sum(len(w.series) for w in dashboard.widgets if isinstance(w, MetricWidget))
    (metric_call,) = plan_metric_data(dashboard)
    assert len(metric_call.queries) == rows
    durations = [q for q in metric_call.queries if q["MetricStat"]["Metric"]["MetricName"] == "Duration"]
    assert durations
    assert {q["MetricStat"]["Stat"] for q in durations} == {"p95"}
    (alarm_call,), problems = plan_alarms(dashboard)
    assert problems == {}
    alarm_names = {
        resource["Properties"]["AlarmName"]
        for resource in any_stage.resources("observability", "AWS::CloudWatch::Alarm").values()
    }
    assert set(alarm_call.names) == alarm_names
