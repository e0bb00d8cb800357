"""`python -m lab.local up|down|status|demo|summary`: the local cloud's commands (used by the Makefile)."""

from __future__ import annotations

import argparse
import json
import sys

from lab.local import lifecycle
from lab.local.deploy import send_sample_events
from lab.local.paths import REPO_ROOT, StateDir
from lab.target import load_local_target


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
        f"  env file     {env_file}   (source it: boto3, the AWS CLI and curl then point at the lab)",
        f"  state table  {outputs.get('TableName', '?')}   queue {outputs.get('QueueName', '?')}   "
        f"DLQ {outputs.get('DlqName', '?')}",
        f"  logs         {_relative(state.engine_log)}, {_relative(state.agent_log)}, "
        f"{_relative(state.root / 'cdk.log')}",
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.local", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "status", "demo", "summary"))
    parser.add_argument(
        "--no-summary", action="store_true", help="`up` without the summary (`make lab` prints it last)"
    )
    parser.add_argument("--samples", type=int, default=3, help="sample events sent by `demo` (default 3)")
    parser.add_argument("--port", type=int, default=None, help="engine port for `up` (default: a free one)")
    args = parser.parse_args(argv)
    state = StateDir.default()
    if args.command == "up":
        lifecycle.up(state, port=args.port)
        if not args.no_summary:
            print(summary(state))
    elif args.command == "summary":
        print(summary(state))
    elif args.command == "down":
        stopped = lifecycle.down(state)
        print(
            "stopped: " + (", ".join(name for name, was in stopped.items() if was) or "nothing was running")
        )
    elif args.command == "status":
        print(json.dumps(lifecycle.status(state).to_dict(), indent=2, sort_keys=True))
    else:
        target = load_local_target(state.outputs_json)
        print(f"sending {args.samples} sample events to {target.api_url}/events; the state table shows:")
        send_sample_events(target, args.samples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
