"""`python -m lab.harness up|down|status|demo|summary`: the local cloud's commands (used by the Makefile)."""

from __future__ import annotations

import argparse
import json
import sys

from lab.harness import lifecycle
from lab.harness.paths import StateDir
from lab.harness.samples import send_sample_events
from lab.harness.summary import summary
from stage_client.target import load_local_target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.harness", description=__doc__)
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
