"""The measuring phases of `make bench` (lab.harness.bench): each drives the stage on the local
cloud and returns its figures; the goals and the report are in lab.harness.bench."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from functions.common.names import MessageAttribute, Output, RecordStatus
from lab.harness import cpu
from lab.harness.cold_start import ImportCost, handler_import_costs
from lab.harness.paths import StateDir
from lab.localcloud.engine import engine_python
from stage_client import redrive
from stage_client.status import count_records
from stage_client.target import Target

LOCUSTFILE = Path(__file__).with_name("bench_locustfile.py")
# The most a phase waits for the stage to catch up: `make bench` stays bounded in time even when
# the stage is far from its goals (the figure then shows how far).
PHASE_TIMEOUT_SECONDS = 120


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


def queue_backlog(target: Target) -> int:
    """Messages of the main queue, visible or in flight (delayed ones included)."""
    attributes = target.client("sqs").get_queue_attributes(
        QueueUrl=target.output(Output.QUEUE_URL),
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def wait_processed(target: Target, timeout: float) -> tuple[int, float]:
    """(SUCCEEDED records, perf_counter seconds) once the main queue is empty: every message
    settled (its record SUCCEEDED before the mapping deleted it, or it went to the DLQ: the
    shortfall from what was sent is reported as lost); at the timeout, what the table holds then.

    The queue's depth is polled (a cheap GetQueueAttributes), the table counted only once it is
    empty: a COUNT scan of a table of thousands of items, 5 times a second, would load the engine
    it measures (py-spy: 11% of the engine's samples in Scan during the drain)."""
    deadline = time.perf_counter() + timeout
    while True:
        if queue_backlog(target) == 0:
            return succeeded_count(target), time.perf_counter()
        if time.perf_counter() > deadline:
            return succeeded_count(target), time.perf_counter()
        time.sleep(0.2)


@dataclass(frozen=True)
class LoadFigures:
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    rps: float
    e2e_events_per_second: float
    lost: int
    # Log bytes per event by function over the measured run (LOG_EVENT_OVERHEAD_BYTES included).
    log_bytes: dict[str, float]
    cpu: cpu.CpuPerEvent


# The size of a log event as CloudWatch Logs counts it (CloudWatch Logs API Reference, PutLogEvents:
# "the sum of all event messages in UTF-8, plus 26 bytes for each log event"): the figure the cost
# arithmetic bills as ingested data (docs/performance.md#cost).
LOG_EVENT_OVERHEAD_BYTES = 26


def log_bytes_per_event(target: Target, since_ms: int, until_ms: int, events: int) -> dict[str, float]:
    """Billed log bytes per event of every function's log group in [since_ms, until_ms]."""
    logs = target.client("logs")
    groups = [
        group["logGroupName"]
        for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix="/aws/lambda/")
        for group in page["logGroups"]
    ]
    figures: dict[str, float] = {}
    for group in groups:
        total = 0
        kwargs: dict[str, Any] = {"logGroupName": group, "startTime": since_ms, "endTime": until_ms}
        while True:
            page = logs.filter_log_events(**kwargs)
            total += sum(len(e["message"].encode()) + LOG_EVENT_OVERHEAD_BYTES for e in page["events"])
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
        if total:
            figures[group.removeprefix("/aws/lambda/")] = round(total / max(1, events), 1)
    return figures


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
        "p50": _locust_number(row["50%"]),
        "p95": _locust_number(row["95%"]),
        "rps": _locust_number(row["Requests/s"]),
    }


def _locust_number(raw: str) -> float:
    """Locust writes N/A for a run in which no request completed."""
    return float("nan") if raw == "N/A" else float(raw)


@dataclass(frozen=True)
class Processes:
    """The local cloud's processes whose CPU a phase accounts for."""

    engine: int
    agent: int | None

    @classmethod
    def of(cls, state: StateDir) -> Processes:
        engine = json.loads(state.engine_json.read_text())["pid"]
        agent = int(state.agent_pid.read_text().strip()) if state.agent_pid.exists() else None
        return cls(int(engine), agent)

    def sample(self) -> cpu.CpuSample:
        return cpu.sample(self.engine, self.agent)


def load_and_end_to_end(
    target: Target, users: int, seconds: int, workdir: Path, *, warmup_seconds: int, processes: Processes
) -> LoadFigures:
    """Ingest latency and end-to-end throughput in steady state: a warm-up run first starts the
    functions' environments (cold starts are measured apart, as import ratios), and is drained."""
    if warmup_seconds:
        locust_run(target, users, warmup_seconds, workdir)
        wait_processed(target, timeout=PHASE_TIMEOUT_SECONDS)
    before = succeeded_count(target)
    started, started_ms = time.perf_counter(), int(time.time() * 1000)
    cpu_before = processes.sample()
    load = locust_run(target, users, seconds, workdir)
    accepted = int(load["requests"] - load["failures"])
    succeeded, finished = wait_processed(target, timeout=PHASE_TIMEOUT_SECONDS)
    cpu_after = processes.sample()
    # The relay and event-log lines of the last events follow the record's SUCCEEDED a moment later.
    time.sleep(3)
    return LoadFigures(
        requests=int(load["requests"]),
        failures=int(load["failures"]),
        p50_ms=load["p50"],
        p95_ms=load["p95"],
        rps=load["rps"],
        e2e_events_per_second=(succeeded - before) / (finished - started),
        lost=max(0, before + accepted - succeeded),
        log_bytes=log_bytes_per_event(target, started_ms, int(time.time() * 1000), accepted),
        cpu=cpu.per_event(cpu_before, cpu_after, succeeded - before),
    )


def enqueue_backlog(target: Target, queue_url: str, messages: int, *, prefix: str) -> None:
    """`messages` valid events as ingest queues them (body + key + submittedAt), in batches of 10."""
    run = uuid.uuid4().hex[:8]
    now = str(int(time.time() * 1000))

    def enqueue(batch: int) -> None:
        client = _fresh_client(target, "sqs")
        entries = []
        for index in range(batch * 10, min(messages, batch * 10 + 10)):
            key = f"{prefix}-{run}-{index}"
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
        list(pool.map(enqueue, range((messages + 9) // 10)))


@dataclass(frozen=True)
class DrainFigures:
    rate: float
    seconds: float
    lost: int
    cpu: cpu.CpuPerEvent


def drain_rate(target: Target, backlog: int, processes: Processes) -> DrainFigures:
    """Messages/s for the worker to empty a backlog queued while its mapping was off."""
    lam = target.client("lambda")
    (mapping,) = lam.list_event_source_mappings(FunctionName=target.output(Output.WORKER_FUNCTION_NAME))[
        "EventSourceMappings"
    ]
    lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
    time.sleep(2)
    enqueue_backlog(target, target.output(Output.QUEUE_URL), backlog, prefix="bench-drain")
    before = succeeded_count(target)
    cpu_before = processes.sample()
    started = time.perf_counter()
    lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=True)
    succeeded, finished = wait_processed(target, timeout=PHASE_TIMEOUT_SECONDS)
    elapsed = finished - started
    drained = succeeded - before
    return DrainFigures(
        drained / elapsed,
        elapsed,
        max(0, backlog - drained),
        cpu.per_event(cpu_before, processes.sample(), drained),
    )


@dataclass(frozen=True)
class RedriveFigures:
    moved: int
    seconds: float
    drained_seconds: float
    # Redriven keys not SUCCEEDED once the main queue was empty again.
    lost: int

    @property
    def rate(self) -> float:
        return self.moved / self.seconds


def redrive_rate(target: Target, messages: int) -> RedriveFigures:
    """Fill the DLQ with `messages` events (as a killed batch leaves them: no error type, no
    record), redrive them through the API at jitter 0, and time the job (DLQ emptied) and the
    drain of what it moved (every key SUCCEEDED)."""
    enqueue_backlog(target, target.output(Output.DLQ_URL), messages, prefix="bench-redrive")
    before = succeeded_count(target)
    started = time.perf_counter()
    job = redrive.start(target, redrive.RedriveParams(max_messages=messages, per_message_delay_jitter=0))
    try:
        done = redrive.wait(target, job.job_id, timeout_s=PHASE_TIMEOUT_SECONDS, interval_s=0.25)
    except redrive.RedriveError:
        # Too slow to finish in the phase's time: the rate is what it moved until then.
        done = redrive.cancel(target, job.job_id)
    moved_at = time.perf_counter()
    succeeded, drained_at = wait_processed(target, timeout=PHASE_TIMEOUT_SECONDS)
    moved = done.counters["moved"]
    lost = max(0, moved - (succeeded - before))
    return RedriveFigures(moved, moved_at - started, drained_at - started, lost)


@dataclass(frozen=True)
class DeployedHandler:
    """A function's handler module, its deployed environment and its code, unpacked."""

    module: str
    environment: dict[str, str]
    code_dir: Path


def deployed_handlers(target: Target, workdir: Path) -> list[DeployedHandler]:
    """Every function of the stage as deployed: its code downloaded from the engine (the asset,
    bundled packages included) while the engine still runs."""
    lam = target.client("lambda")
    handlers: list[DeployedHandler] = []
    for page in lam.get_paginator("list_functions").paginate():
        for function in page["Functions"]:
            handler = str(function.get("Handler", ""))
            if not handler.startswith("functions."):
                continue
            location = lam.get_function(FunctionName=function["FunctionName"])["Code"]["Location"]
            with urllib.request.urlopen(location, timeout=30) as response:  # noqa: S310 - the engine on loopback
                archive = response.read()
            code_dir = workdir / "code" / function["FunctionName"]
            with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
                zipped.extractall(code_dir)
            handlers.append(
                DeployedHandler(
                    handler.rsplit(".", 1)[0],
                    dict(function.get("Environment", {}).get("Variables", {})),
                    code_dir,
                )
            )
    return handlers


def cold_start_costs(handlers: list[DeployedHandler], runs: int) -> list[ImportCost]:
    """On the engine's interpreter (what the local functions run on), in each function's unpacked
    code (as the Lambda runtime imports it), with its deployed environment."""
    base_env = {"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1", "AWS_REGION": "us-east-1"}
    costs = []
    for handler in sorted(handlers, key=lambda h: h.module):
        costs += handler_import_costs(
            engine_python(),
            {handler.module: handler.environment},
            base_env=base_env,
            cwd=handler.code_dir,
            runs=runs,
        )
    return costs
