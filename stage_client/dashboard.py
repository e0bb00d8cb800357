"""Where a deployed stage's own CloudWatch dashboard is seen: its name (the stage output
DashboardName) and, for a stage on AWS, its console URL for a time range.

The range is written as the dashboard body writes it (CloudWatch API Reference, "Dashboard Body
Structure and Syntax": a relative start such as -PT15M, or an ISO 8601 start and end). The console's
URL fragment (`#dashboards/dashboard/<name>?start=PT15M`, relative starts without the sign) is the
console's own convention, not an API: a console change moves the link, never the dashboard.
"""

from __future__ import annotations

from urllib.parse import quote

from functions.common.names import Output
from stage_client.target import Target


def dashboard_name(target: Target) -> str:
    return target.output(Output.DASHBOARD_NAME)


def console_url(target: Target, start: str, end: str | None = None) -> str:
    """The stage's dashboard in the CloudWatch console of its region, showing start (-PT15M) or the
    window start..end (ISO 8601)."""
    region = target.region
    host = "console.amazonaws.cn" if region.startswith("cn-") else f"{region}.console.aws.amazon.com"
    shown = start[1:] if start.startswith("-P") else start
    query = f"start={shown}" + (f"&end={end}" if end else "")
    return f"https://{host}/cloudwatch/home?region={region}#dashboards/dashboard/{quote(dashboard_name(target))}?{query}"
