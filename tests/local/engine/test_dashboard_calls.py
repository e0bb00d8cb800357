"""Engine conformance: the three CloudWatch calls the dashboard page makes, as AWS answers them.

- GetMetricData takes up to 500 MetricDataQuery structures in one call and answers each by its own
  metric, dimensions, statistic (percentiles included) and period (CloudWatch API Reference,
  GetMetricData); the page asks for a whole dashboard in one such call.
- DescribeAlarms takes up to 100 AlarmNames and MaxRecords up to 100 (API Reference,
  DescribeAlarms); the page asks for every alarm of its widgets in one call per 100.
- GetDashboard returns the body PutDashboard stored (API Reference, GetDashboard).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from lab.localcloud.dashboard.queries import MAX_ALARM_NAMES_PER_CALL, MAX_QUERIES_PER_CALL


def test_one_get_metric_data_answers_500_queries_each_by_its_own_dimensions(local_engine, name):
    cloudwatch = local_engine.client("cloudwatch")
    namespace = name("Dashboard")
    now = datetime.now(UTC)
    cloudwatch.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": "Depth",
                "Dimensions": [{"Name": "QueueName", "Value": queue}],
                "Value": value,
                "Timestamp": now - timedelta(seconds=5),
            }
            for queue, values in (("a", (1.0, 9.0)), ("b", (100.0, 300.0)))
            for value in values
        ],
    )

    def query(index: int, queue: str, stat: str) -> dict[str, object]:
        metric = {
            "Namespace": namespace,
            "MetricName": "Depth",
            "Dimensions": [{"Name": "QueueName", "Value": queue}],
        }
        return {
            "Id": f"q{index}",
            "MetricStat": {"Metric": metric, "Period": 60, "Stat": stat},
            "ReturnData": True,
        }

    stats = ("Maximum", "Minimum", "Sum", "p50")
    queries = [query(i, "ab"[i % 2], stats[(i // 2) % len(stats)]) for i in range(MAX_QUERIES_PER_CALL)]
    response = cloudwatch.get_metric_data(
        MetricDataQueries=queries,
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=1),
        ScanBy="TimestampAscending",
    )
    results = {r["Id"]: r["Values"] for r in response["MetricDataResults"]}
    assert len(results) == MAX_QUERIES_PER_CALL
    assert "NextToken" not in response
    assert results["q0"] == [9.0]  # a, Maximum
    assert results["q1"] == [300.0]  # b, Maximum
    assert results["q2"] == [1.0]  # a, Minimum
    assert results["q5"] == [400.0]  # b, Sum
    # b, p50: a value within the period's samples (AWS estimates percentiles; no exact value is promised).
    assert len(results["q7"]) == 1
    assert 100.0 <= results["q7"][0] <= 300.0


def test_describe_alarms_answers_100_names_in_one_page(local_engine, name):
    cloudwatch = local_engine.client("cloudwatch")
    prefix = name("page")
    names = [f"{prefix}-{n:03d}" for n in range(MAX_ALARM_NAMES_PER_CALL)]
    for alarm in names:
        cloudwatch.put_metric_alarm(
            AlarmName=alarm,
            Namespace="Dashboard",
            MetricName="Depth",
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=0,
            ComparisonOperator="GreaterThanThreshold",
        )
    cloudwatch.set_alarm_state(AlarmName=names[7], StateValue="ALARM", StateReason="test")
    response = cloudwatch.describe_alarms(
        AlarmNames=names, AlarmTypes=["MetricAlarm", "CompositeAlarm"], MaxRecords=MAX_ALARM_NAMES_PER_CALL
    )
    states = {alarm["AlarmName"]: alarm["StateValue"] for alarm in response["MetricAlarms"]}
    assert sorted(states) == names
    assert "NextToken" not in response
    assert states[names[7]] == "ALARM"
    cloudwatch.delete_alarms(AlarmNames=names)


def test_get_dashboard_returns_the_stored_body(local_engine, name):
    cloudwatch = local_engine.client("cloudwatch")
    dashboard = name("dash")
    body = {"start": "-PT3H", "widgets": [{"type": "text", "properties": {"markdown": "# hi"}}]}
    cloudwatch.put_dashboard(DashboardName=dashboard, DashboardBody=json.dumps(body))
    assert json.loads(cloudwatch.get_dashboard(DashboardName=dashboard)["DashboardBody"]) == body
