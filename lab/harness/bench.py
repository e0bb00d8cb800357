"""`make bench`: figures of the local cloud, measured in one run on a lab of its own.

Prints: the engine's raw SendMessage rate (the ceiling), ingest latency p50/p95 and end-to-end
throughput (POST -> SUCCEEDED) under Locust, and the worker's drain rate of a 2,000-message backlog.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3

from functions.common.names import MessageAttribute, Output, RecordStatus
from lab.harness import lifecycle
from lab.harness.paths import StateDir
from lab.localcloud.engine import auth_default
from stage_client.status import count_records
from stage_client.target import Target

LOCUSTFILE = Path(__file__).with_name("bench_locustfile.py")


def raw_send_rate(target: Target, messages: int, threads: int) -> float:
    """SendMessage calls per second into a scratch queue nobody reads (one client per thread)."""
    sqs = target.client("sqs")
    url = sqs.create_queue(QueueName=f"bench-raw-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    per_thread = messages // threads

    def send(_: int) -> None:
        client = target.client("sqs") if threads == 1 else _fresh_client(target, "sqs")
        for index in range(per_thread):
            client.send_message(QueueUrl=url, MessageBody=f"raw-{index}")

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, range(threads)))
    elapsed = time.perf_counter() - started
    sqs.delete_queue(QueueUrl=url)
    return per_thread * threads / elapsed


def _fresh_client(target: Target, service: str) -> Any:
    """A client of its own per thread (Target caches one client per service)."""
    return boto3.client(service, region_name=target.region, endpoint_url=target.endpoint_url)


def succeeded_count(target: Target) -> int:
    return count_records(target, RecordStatus.SUCCEEDED)


def wait_succeeded(target: Target, expected: int, timeout: float) -> float:
    """Seconds (perf_counter) at which the table held `expected` SUCCEEDED records."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if succeeded_count(target) >= expected:
            return time.perf_counter()
        time.sleep(0.25)
    raise RuntimeError(
        f"only {succeeded_count(target)} of {expected} events SUCCEEDED within {timeout:.0f} s"
    )


def locust_run(target: Target, users: int, seconds: int, workdir: Path) -> dict[str, float]:
    prefix = workdir / "locust"
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
        "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--host", target.api_url,
        "--csv", str(prefix), "--stop-timeout", "5", "--exit-code-on-error", "0",
    ]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    with (workdir / "locust_stats.csv").open() as stats:
        row = next(r for r in csv.DictReader(stats) if r["Name"] == "Aggregated")
    return {
        "requests": float(row["Request Count"]),
        "failures": float(row["Failure Count"]),
        "p50": float(row["50%"]),
        "p95": float(row["95%"]),
        "rps": float(row["Requests/s"]),
    }


def drain_rate(target: Target, backlog: int) -> tuple[float, float]:
    """(messages/s, seconds) for the worker to empty a backlog queued while its mapping was off."""
    lam = target.client("lambda")
    queue_url = target.output(Output.QUEUE_URL)
    (mapping,) = lam.list_event_source_mappings(FunctionName=target.output(Output.WORKER_FUNCTION_NAME))[
        "EventSourceMappings"
    ]
    lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
    time.sleep(2)
    run = uuid.uuid4().hex[:8]
    now = str(int(time.time() * 1000))

    def enqueue(batch: int) -> None:
        client = _fresh_client(target, "sqs")
        entries = []
        for index in range(batch * 10, batch * 10 + 10):
            key = f"bench-drain-{run}-{index}"
            entries.append(
                {
                    "Id": str(index),
                    "MessageBody": json.dumps({"orderId": key, "amount": 1}),
                    "MessageAttributes": {
                        MessageAttribute.IDEMPOTENCY_KEY.value: {"DataType": "String", "StringValue": key},
                        MessageAttribute.SUBMITTED_AT.value: {"DataType": "Number", "StringValue": now},
                    },
                }
            )
        client.send_message_batch(QueueUrl=queue_url, Entries=entries)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(enqueue, range(backlog // 10)))
    before = succeeded_count(target)
    started = time.perf_counter()
    lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=True)
    finished = wait_succeeded(target, before + backlog, timeout=600)
    elapsed = finished - started
    return backlog / elapsed, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.harness.bench", description=__doc__)
    parser.add_argument("--users", type=int, default=8, help="Locust users (default 8)")
    parser.add_argument("--seconds", type=int, default=20, help="Locust run time (default 20)")
    parser.add_argument("--backlog", type=int, default=2000, help="drain backlog (default 2000)")
    parser.add_argument("--raw-messages", type=int, default=1000, help="raw SendMessage calls (default 1000)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as workdir:
        state = StateDir(Path(workdir) / "state")
        try:
            print("bringing up a lab of its own (fresh engine, deploy)...", flush=True)
            target = lifecycle.up(state, log=lambda _msg: None)
            raw_1 = raw_send_rate(target, args.raw_messages, threads=1)
            raw_4 = raw_send_rate(target, args.raw_messages, threads=4)
            before = succeeded_count(target)
            started = time.perf_counter()
            load = locust_run(target, args.users, args.seconds, Path(workdir))
            accepted = int(load["requests"] - load["failures"])
            finished = wait_succeeded(target, before + accepted, timeout=300)
            e2e = accepted / (finished - started)
            drain, drain_seconds = drain_rate(target, args.backlog)
        finally:
            lifecycle.down(state)
    auth = "on" if auth_default() else "off"
    print(
        "\n".join(
            [
                "",
                f"Local cloud figures (ministack, IAM enforcement {auth}, "
                f"{args.users} Locust users, {args.seconds} s)",
                f"  engine raw SendMessage        {raw_1:8.0f} msg/s (1 client)   "
                f"{raw_4:6.0f} msg/s (4 clients)",
                f"  ingest latency (POST /events) p50 {load['p50']:.0f} ms   "
                f"p95 {load['p95']:.0f} ms   "
                f"({load['rps']:.1f} req/s, {int(load['requests'])} requests, "
                f"{int(load['failures'])} failed)",
                f"  end to end POST -> SUCCEEDED  {e2e:8.1f} events/s ({accepted} events)",
                f"  drain of a {args.backlog}-message backlog {drain:6.1f} msg/s ({drain_seconds:.1f} s)",
                "",
            ]
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
