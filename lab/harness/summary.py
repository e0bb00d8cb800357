"""The summary `make lab` ends with: where the API is, the env file, the logs, what to try."""

from __future__ import annotations

from lab.harness import lifecycle
from lab.harness.paths import StateDir
from stage_client.target import REPO_ROOT, load_local_target


def _relative(path: object) -> str:
    text = str(path)
    prefix = f"{REPO_ROOT}/"
    return text[len(prefix) :] if text.startswith(prefix) else text


def summary(state: StateDir) -> str:
    """What a person needs after `make lab`: where the API is and what to try."""
    target = load_local_target(state.outputs_json)
    status = lifecycle.status(state)
    env_file = _relative(state.env_file)
    outputs = target.outputs
    lines = [
        "",
        "The ingestion lab is running on this machine (local cloud, IAM enforced)"
        if status.auth
        else "The ingestion lab is running on this machine (local cloud, IAM not enforced: LAB_AUTH=false)",
        f"  API          {target.api_url}",
        f"  AWS endpoint {target.endpoint_url}   (region {target.region}, credentials test/test)",
        "  dashboard    "
        + (
            f"{status.dashboard_url}?start=-PT15M   (the stage's own CloudWatch dashboard, live)"
            if status.dashboard_url
            else "not running: `lab dashboard` starts it"
        ),
        f"  env file     {env_file}   (source it: boto3, the AWS CLI and curl then point at the lab)",
        f"  state table  {outputs.get('TableName', '?')}   queue {outputs.get('QueueName', '?')}   "
        f"DLQ {outputs.get('DlqName', '?')}",
        f"  logs         {_relative(state.engine_log)}, {_relative(state.agent_log)}, "
        f"{_relative(state.cdk_log)}",
        f"  delivery     at least once: {100 * (status.duplicate_share or 0):.0f}% of SQS receives, rule and "
        f"SNS deliveries duplicated (LAB_DUPLICATE_SHARE; record in {_relative(state.duplicates_json)})",
        "",
        "Try:",
        f"  source {env_file}",
        '  curl -s -X POST "$API_URL/events" -H "content-type: application/json" '
        '-d \'{"orderId": "123", "amount": 42.5}\'',
        f"  aws dynamodb scan --table-name {outputs.get('TableName', '<table>')} --max-items 5",
        "  aws cloudwatch describe-alarms --query 'MetricAlarms[].[AlarmName,StateValue]' --output table",
        "  .venv/bin/lab status              # queue depths, alarm states, records by status",
        "  .venv/bin/lab gameday all         # every drill (reports/ holds the timelines and charts)",
        "  make lab-down                     # stop everything",
        "",
    ]
    return "\n".join(lines)
