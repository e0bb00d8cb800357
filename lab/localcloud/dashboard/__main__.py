"""`python -m lab.localcloud.dashboard --endpoint-url URL --dashboard NAME --port N`: serve one
dashboard of a local cloud on 127.0.0.1 until SIGTERM (lab.localcloud.dashboard.process starts it)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import boto3

from lab.localcloud.dashboard.server import DashboardServer, missing_static_files
from lab.localcloud.dashboard.service import DashboardService
from lab.localcloud.engine import REGION, aws_env


def cloudwatch_clients(endpoint_url: str) -> Callable[[str], Any]:
    """region -> a CloudWatch client of the local cloud with its test credentials, created once."""
    env = aws_env(endpoint_url)
    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"]
    )
    clients: dict[str, Any] = {}
    lock = threading.Lock()

    def client_for(region: str) -> Any:
        with lock:  # boto3 clients are thread-safe once made; making one is not
            if region not in clients:
                clients[region] = session.client("cloudwatch", region_name=region, endpoint_url=endpoint_url)
            return clients[region]

    return client_for


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.localcloud.dashboard", description=__doc__)
    parser.add_argument("--endpoint-url", required=True, help="the local cloud, http://127.0.0.1:<port>")
    parser.add_argument("--dashboard", required=True, help="the CloudWatch dashboard's name")
    parser.add_argument("--port", type=int, default=0, help="port of the page (default: a free one)")
    args = parser.parse_args(argv)
    missing = missing_static_files()
    if missing:
        print(f"missing {', '.join(map(str, missing))}: run npm ci", file=sys.stderr)
        return 2
    service = DashboardService(args.dashboard, cloudwatch_clients(args.endpoint_url), region=REGION)
    server = DashboardServer(service, args.port)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"dashboard {args.dashboard} on {server.url}", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
