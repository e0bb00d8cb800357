"""What the page's server asks the local cloud, and nothing more: GetDashboard (the body, re-read at
most every BODY_TTL_S), GetMetricData and DescribeAlarms, the three read-only CloudWatch calls a
dashboard needs. Each refresh reports the calls it made, so the page can show its own cost."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lab.localcloud.dashboard.queries import (
    MAX_ALARM_NAMES_PER_CALL,
    MetricDataCall,
    alarm_name,
    alarm_region,
    plan_alarms,
    plan_metric_data,
)
from lab.localcloud.dashboard.timerange import CHOICES, DEFAULT_RANGE, TimeRange
from lab.localcloud.dashboard.widgets import Dashboard, DashboardBodyError, parse_body

# A stage redeployed with a new widget shows it within this time, without a page reload.
BODY_TTL_S = 30.0
CloudWatchFor = Callable[[str], Any]


class DashboardNotFound(LookupError):
    """GetDashboard answered that the dashboard does not exist (stage not deployed yet)."""


class UpstreamError(RuntimeError):
    """The local cloud could not be reached, or answered something that is not a dashboard."""


@dataclass(frozen=True)
class LoadedBody:
    dashboard: Dashboard
    digest: str
    loaded_at: float


class DashboardService:
    """One dashboard of one local cloud; thread-safe (the HTTP server answers in threads)."""

    def __init__(
        self,
        name: str,
        cloudwatch_for: CloudWatchFor,
        *,
        region: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.region = region
        self._cloudwatch_for = cloudwatch_for
        self._clock = clock
        self._lock = threading.Lock()
        self._body: LoadedBody | None = None

    def describe(self) -> dict[str, Any]:
        """The dashboard's widgets for the page's layout (always a fresh GetDashboard)."""
        calls: Counter[str] = Counter()
        loaded = self._load(calls, force=True)
        return {
            "name": self.name,
            "region": self.region,
            "hash": loaded.digest,
            **loaded.dashboard.to_dict(),
            "ranges": CHOICES,
            "defaultRange": DEFAULT_RANGE,
            "calls": dict(calls),
        }

    def refresh(self, window: TimeRange) -> dict[str, Any]:
        """Every widget's data for `window` in as few calls as the API allows."""
        calls: Counter[str] = Counter()
        started = time.perf_counter()
        loaded = self._load(calls, force=False)
        plan = plan_metric_data(loaded.dashboard)
        series: dict[str, dict[str, dict[str, Any]]] = {}
        for call in plan:
            self._metric_data(call, window, series, calls)
        alarms = self._alarms(loaded.dashboard, calls)
        return {
            "hash": loaded.digest,
            "range": window.to_dict(),
            "series": series,
            "alarms": alarms,
            "calls": dict(calls),
            "queries": sum(len(call.queries) for call in plan),
            "upstreamMs": round((time.perf_counter() - started) * 1000, 1),
        }

    def _load(self, calls: Counter[str], *, force: bool) -> LoadedBody:
        with self._lock:
            cached = self._body
            if cached is not None and not force and self._clock() - cached.loaded_at < BODY_TTL_S:
                return cached
        try:
            response = self._cloudwatch_for(self.region).get_dashboard(DashboardName=self.name)
        except ClientError as error:
            calls["GetDashboard"] += 1
            if error.response.get("Error", {}).get("Code") in (
                "ResourceNotFound",
                "ResourceNotFoundException",
            ):
                raise DashboardNotFound(
                    f"dashboard {self.name!r} does not exist in the local cloud"
                ) from None
            raise UpstreamError(f"GetDashboard failed: {error}") from None
        except BotoCoreError as error:
            raise UpstreamError(f"the local cloud did not answer GetDashboard: {error}") from None
        calls["GetDashboard"] += 1
        body = str(response.get("DashboardBody", ""))
        try:
            dashboard = parse_body(body, default_region=self.region)
        except DashboardBodyError as error:
            raise UpstreamError(str(error)) from None
        loaded = LoadedBody(dashboard, hashlib.sha256(body.encode()).hexdigest()[:16], self._clock())
        with self._lock:
            self._body = loaded
        return loaded

    def _metric_data(
        self,
        call: MetricDataCall,
        window: TimeRange,
        series: dict[str, dict[str, dict[str, Any]]],
        calls: Counter[str],
    ) -> None:
        for ref in call.refs.values():
            series.setdefault(str(ref.widget), {})[ref.series] = {"t": [], "v": [], "status": "Complete"}
        # AWS: start times aligned to the period's minute perform better and bucket the same way.
        start = window.start.replace(second=0, microsecond=0)
        token: str | None = None
        while True:
            request: dict[str, Any] = {
                "MetricDataQueries": call.queries,
                "StartTime": start,
                "EndTime": window.end + timedelta(seconds=1),
                "ScanBy": "TimestampAscending",
            }
            if token:
                request["NextToken"] = token
            try:
                response = self._cloudwatch_for(call.region).get_metric_data(**request)
            except ClientError as error:
                calls["GetMetricData"] += 1
                for ref in call.refs.values():
                    series[str(ref.widget)][ref.series].update(status="Error", messages=[str(error)])
                return
            except BotoCoreError as error:
                raise UpstreamError(f"the local cloud did not answer GetMetricData: {error}") from None
            calls["GetMetricData"] += 1
            _merge_results(call, response.get("MetricDataResults", []), series)
            token = response.get("NextToken")
            if not token:
                break

    def _alarms(self, dashboard: Dashboard, calls: Counter[str]) -> dict[str, dict[str, Any]]:
        """arn -> state of every alarm a widget shows, matched by region and name (the ARN in the
        body is the one CloudFormation resolved; the name is what DescribeAlarms takes)."""
        plan, problems = plan_alarms(dashboard)
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for call in plan:
            try:
                response = self._cloudwatch_for(call.region).describe_alarms(
                    AlarmNames=list(call.names),
                    AlarmTypes=["MetricAlarm", "CompositeAlarm"],
                    MaxRecords=MAX_ALARM_NAMES_PER_CALL,
                )
            except (ClientError, BotoCoreError) as error:
                raise UpstreamError(f"DescribeAlarms failed: {error}") from None
            calls["DescribeAlarms"] += 1
            for alarm in [*response.get("MetricAlarms", []), *response.get("CompositeAlarms", [])]:
                found[(call.region, alarm["AlarmName"])] = {
                    "name": alarm["AlarmName"],
                    "state": alarm.get("StateValue"),
                    "reason": alarm.get("StateReason"),
                    "updated": _iso(alarm.get("StateUpdatedTimestamp")),
                    "threshold": alarm.get("Threshold"),
                }
        states: dict[str, dict[str, Any]] = {}
        for arn in dashboard.alarm_arns():
            if arn in problems:
                states[arn] = {"error": problems[arn]}
                continue
            key = (alarm_region(arn), alarm_name(arn))
            states[arn] = found.get(key) or {"name": key[1], "error": "no such alarm"}
        return states


def _merge_results(
    call: MetricDataCall, results: list[dict[str, Any]], series: dict[str, dict[str, dict[str, Any]]]
) -> None:
    """Append one page of GetMetricData results to their series, kept in time order."""
    for result in results:
        found = call.refs.get(result.get("Id", ""))
        if found is None:
            continue
        target = series[str(found.widget)][found.series]
        target["t"].extend(_epoch(t) for t in result.get("Timestamps", []))
        target["v"].extend(float(v) for v in result.get("Values", []))
        target["status"] = result.get("StatusCode", "Complete")
        if result.get("Messages"):
            target["messages"] = [m.get("Value", "") for m in result["Messages"]]
        if target["t"] != sorted(target["t"]):
            pairs = sorted(zip(target["t"], target["v"], strict=True))
            target["t"], target["v"] = [p[0] for p in pairs], [p[1] for p in pairs]


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value)).timestamp()


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds")
    return str(value) if value else None
