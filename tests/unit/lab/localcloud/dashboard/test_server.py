"""The page's server over CloudWatch (moto in-process): the layout, one refresh's data and alarm
states and what it cost, and a JSON 4xx for everything a browser could send wrong."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lab.localcloud.dashboard import server as server_module
from lab.localcloud.dashboard.server import DashboardServer
from lab.localcloud.dashboard.service import BODY_TTL_S, DashboardService

REGION = "us-east-1"
DLQ = "ingestion-test-events-dlq"
DEPTH = ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", DLQ]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def cloudwatch() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("cloudwatch", region_name=REGION)


def put_dashboard(cloudwatch: Any, alarm_arn: str) -> None:
    body = {
        "start": "-PT3H",
        "widgets": [
            {"type": "text", "width": 24, "height": 2, "properties": {"markdown": "# test"}},
            {
                "type": "metric",
                "x": 0,
                "y": 2,
                "width": 12,
                "height": 6,
                "properties": {
                    "title": "DLQ",
                    "region": REGION,
                    "metrics": [[*DEPTH, {"stat": "Maximum", "period": 60, "label": "visible"}]],
                },
            },
            {"type": "alarm", "properties": {"title": "Alarms", "alarms": [alarm_arn]}},
        ],
    }
    cloudwatch.put_dashboard(DashboardName="d", DashboardBody=json.dumps(body))


@pytest.fixture
def served(cloudwatch: Any) -> Iterator[tuple[DashboardServer, Clock]]:
    cloudwatch.put_metric_alarm(
        AlarmName="dlq-depth",
        Namespace="AWS/SQS",
        MetricName="ApproximateNumberOfMessagesVisible",
        Dimensions=[{"Name": "QueueName", "Value": DLQ}],
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName="dlq-depth", StateValue="ALARM", StateReason="1 > 0")
    arn = cloudwatch.describe_alarms(AlarmNames=["dlq-depth"])["MetricAlarms"][0]["AlarmArn"]
    put_dashboard(cloudwatch, arn)
    cloudwatch.put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {
                "MetricName": DEPTH[1],
                "Dimensions": [{"Name": "QueueName", "Value": DLQ}],
                "Value": value,
                "Timestamp": datetime.now(UTC) - timedelta(seconds=seconds),
            }
            for value, seconds in ((3, 90), (7, 30))
        ],
    )
    clock = Clock()
    service = DashboardService("d", lambda _region: cloudwatch, region=REGION, clock=clock)
    httpd = DashboardServer(service, 0)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd, clock
    finally:
        httpd.shutdown()
        httpd.server_close()


def get(
    httpd: DashboardServer, path: str, *, method: str = "GET", host: str | None = None
) -> tuple[int, dict[str, Any], str]:
    connection = http.client.HTTPConnection("127.0.0.1", httpd.port, timeout=10)
    headers = {"Host": host} if host else {}
    connection.request(method, path, headers=headers)
    response = connection.getresponse()
    raw = response.read().decode()
    content_type = response.getheader("Content-Type") or ""
    connection.close()
    data = json.loads(raw) if content_type == "application/json" and raw else {}
    return response.status, data, content_type


def test_the_layout_is_the_deployed_body(served: tuple[DashboardServer, Clock]) -> None:
    httpd, _ = served
    status, layout, _ = get(httpd, "/api/dashboard")
    assert status == 200
    assert [w["kind"] for w in layout["widgets"]] == ["text", "metric", "alarm"]
    assert layout["widgets"][1]["series"][0]["dimensions"] == {"QueueName": DLQ}
    assert layout["start"] == "-PT3H"
    assert layout["calls"] == {"GetDashboard": 1}


def test_a_refresh_brings_each_series_and_alarm_state_in_one_call_of_each(
    served: tuple[DashboardServer, Clock],
) -> None:
    httpd, clock = served
    status, data, _ = get(httpd, "/api/data?start=-PT15M")
    assert status == 200
    series = data["series"]["1"]["s0"]
    assert series["status"] == "Complete"
    assert max(series["v"]) == 7.0
    assert series["t"] == sorted(series["t"])
    (alarm,) = data["alarms"].values()
    assert (alarm["name"], alarm["state"]) == ("dlq-depth", "ALARM")
    assert data["calls"] == {"GetDashboard": 1, "GetMetricData": 1, "DescribeAlarms": 1}
    assert data["queries"] == 1
    # Within the body's time to live a refresh asks only for data and alarm states.
    _, again, _ = get(httpd, "/api/data?start=-PT15M")
    assert again["calls"] == {"GetMetricData": 1, "DescribeAlarms": 1}
    clock.now += BODY_TTL_S
    _, later, _ = get(httpd, "/api/data?start=-PT15M")
    assert later["calls"]["GetDashboard"] == 1


def test_a_fixed_window_without_data_returns_empty_series(served: tuple[DashboardServer, Clock]) -> None:
    httpd, _ = served
    _, data, _ = get(httpd, "/api/data?start=2020-01-01T00:00:00Z&end=2020-01-01T01:00:00Z")
    assert data["series"]["1"]["s0"]["v"] == []
    assert data["range"] == {"start": "2020-01-01T00:00:00Z", "end": "2020-01-01T01:00:00Z", "relative": None}


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("/api/data?start=tomorrow&end=x", 400, "bad_time_range"),
        ("/api/data?start=-PT5M&end=2020-01-01T00:00:00Z", 400, "bad_time_range"),
        ("/api/data?start=-PT5M&start=-PT1H", 400, "bad_parameter"),
        ("/api/data?region=eu-west-1", 400, "bad_parameter"),
        ("/api/dashboard?x=1", 400, "unknown_parameter"),
        ("/api/nothing", 404, "not_found"),
        ("/../../etc/passwd", 404, "not_found"),
    ],
)
def test_bad_requests_get_a_json_4xx(
    served: tuple[DashboardServer, Clock], path: str, status: int, error: str
) -> None:
    code, data, content_type = get(served[0], path)
    assert (code, data.get("error"), content_type) == (status, error, "application/json")


def test_only_get_is_answered(served: tuple[DashboardServer, Clock]) -> None:
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        code, data, _ = get(served[0], "/api/data", method=method)
        assert (code, data["error"]) == (405, "method_not_allowed")


def test_another_sites_host_name_is_refused(served: tuple[DashboardServer, Clock]) -> None:
    """A page of another site that points its DNS name at 127.0.0.1 must not read the metrics."""
    code, data, _ = get(served[0], "/api/data", host=f"evil.example:{served[0].port}")
    assert (code, data["error"]) == (403, "forbidden_host")
    assert get(served[0], "/healthz", host=f"localhost:{served[0].port}")[0] == 200


def test_the_page_is_served_and_a_missing_chart_library_says_how_to_install_it(
    served: tuple[DashboardServer, Clock], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, content_type = get(served[0], "/")
    assert (code, content_type) == (200, "text/html; charset=utf-8")
    missing = tmp_path / "uPlot.iife.min.js"
    files = dict(server_module.STATIC_FILES)
    files["/static/uPlot.iife.min.js"] = (missing, "text/javascript; charset=utf-8")
    monkeypatch.setattr(server_module, "STATIC_FILES", files)
    code, data, _ = get(served[0], "/static/uPlot.iife.min.js")
    assert (code, data["error"]) == (404, "not_installed")
    assert "npm ci" in data["message"]


def test_a_dashboard_not_deployed_is_a_404_that_says_so(cloudwatch: Any) -> None:
    service = DashboardService("missing", lambda _region: cloudwatch, region=REGION)
    httpd = DashboardServer(service, 0)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        code, data, _ = get(httpd, "/api/dashboard")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert (code, data["error"]) == (404, "dashboard_not_found")
    assert "make lab" in data["message"]
