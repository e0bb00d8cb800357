"""Calls per event, counted from the engine's own request records (issue 14): what the stage's
functions ask of SQS, DynamoDB, EventBridge and SSM for each event, new and duplicate.

How it counts. The engine records every API request it serves as a CloudTrail event once its
recording is switched on (`POST /_ministack/config {"cloudtrail._recording_enabled": true}`): the
action (`eventName`), the service (`eventSource`), the caller's access key and the request's
parameters. Each function calls AWS with its execution role's session (IAM enforced), the lab's
own clients (this counter, the metrics/alarm agent) with the account's test key, so a call made
by a function is a record whose access key is not the test key. Such calls are counted by action
and by the resource they name (the table, queue, bus or parameter), in a time window around a
measured phase. The engine's SQS and DynamoDB-stream pollers (the event source mappings) call no
API, so their receives and deletes do not appear: the figures are the functions' own calls.

Measured phases (`measure_calls_per_event`): N new events posted at once (8 clients), waited for
until every key is SUCCEEDED and the queue is empty, then a settle period (events published by a
relay after the record settled); then the same N payloads posted again (duplicates: same key), the
same waits. Calls per event = calls in the phase / N.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from functions.common.names import Output, RecordStatus
from stage_client.send import new_run_id, sample_payload, send_payloads
from stage_client.target import Target, load_local_target
from stage_client.verify import fetch_statuses

RECORDING_CONFIG_KEY = "cloudtrail._recording_enabled"
# The engine's LookupEvents answers at most 50 events, newest first, and has no NextToken.
LOOKUP_PAGE_SIZE = 50
# A call with a parameter unique to one window, made just before the window opens: still found in
# the records afterwards, it proves that the engine's bounded record (CLOUDTRAIL_MAX_EVENTS, 10,000
# by default) holds the whole window. (STS calls are not recorded by the engine.)
MARKER_ACTION = "ListQueues"
# The actions counted: every call a function of the stage makes on the event path.
COUNTED_ACTIONS: dict[str, tuple[str, ...]] = {
    "sqs": ("SendMessage", "SendMessageBatch"),
    "dynamodb": (
        "UpdateItem",
        "PutItem",
        "DeleteItem",
        "BatchWriteItem",
        "TransactWriteItems",
        "GetItem",
        "BatchGetItem",
        "Query",
    ),
    "events": ("PutEvents",),
    "ssm": ("GetParameter", "GetParameters"),
}
DYNAMODB_WRITES = frozenset({"UpdateItem", "PutItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})


class CountingError(RuntimeError):
    """The engine's records cannot give a complete count (recording off, record overflowed)."""


@dataclass(frozen=True)
class Call:
    """One API request a function made, as the engine recorded it."""

    service: str
    action: str
    resource: str
    caller: str
    at: datetime


def start_recording(endpoint_url: str) -> None:
    """Switch the engine's request recording on (idempotent; it stays on until the engine stops)."""
    request = urllib.request.Request(  # noqa: S310 - the engine's loopback admin endpoint
        f"{endpoint_url}/_ministack/config",
        data=json.dumps({RECORDING_CONFIG_KEY: True}).encode(),
        method="POST",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        applied = json.loads(response.read()).get("applied", {})
    if applied.get(RECORDING_CONFIG_KEY) is not True:
        raise CountingError(f"the engine did not switch its request recording on: {applied}")


def stop_recording(target: Target) -> None:
    """Switch the recording off again, so later phases do not pay for it."""
    if target.endpoint_url is None:
        return
    request = urllib.request.Request(  # noqa: S310 - the engine's loopback admin endpoint
        f"{target.endpoint_url}/_ministack/config",
        data=json.dumps({RECORDING_CONFIG_KEY: False}).encode(),
        method="POST",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310
        pass


def _resource_of(service: str, parameters: dict[str, Any]) -> str:
    if service == "sqs":
        return str(parameters.get("QueueUrl", "")).rsplit("/", 1)[-1]
    if service == "dynamodb":
        tables = parameters.get("TableName") or ",".join(sorted(parameters.get("RequestItems", {})))
        return str(tables)
    if service == "events":
        buses = {entry.get("EventBusName", "default") for entry in parameters.get("Entries", [])}
        return ",".join(sorted(buses))
    if service == "ssm":
        return str(parameters.get("Name", ""))
    return ""


def recorded_calls(target: Target, action: str, *, since: datetime, until: datetime) -> list[Call]:
    """Every recorded request of `action` in [since, until], oldest first.

    LookupEvents answers the newest 50; the next page ends at the oldest event of the previous one
    (inclusive: those come again and are skipped by their event id).
    """
    cloudtrail = target.client("cloudtrail")
    seen: dict[str, Call] = {}
    end = until
    while True:
        page = cloudtrail.lookup_events(
            LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": action}],
            StartTime=since,
            EndTime=end,
            MaxResults=LOOKUP_PAGE_SIZE,
        )["Events"]
        fresh = [event for event in page if event["EventId"] not in seen]
        for event in fresh:
            record = json.loads(event["CloudTrailEvent"])
            service = str(record["eventSource"]).split(".", 1)[0]
            seen[event["EventId"]] = Call(
                service=service,
                action=action,
                resource=_resource_of(service, record.get("requestParameters") or {}),
                caller=str(record["userIdentity"].get("accessKeyId", "")),
                at=event["EventTime"],
            )
        if len(page) < LOOKUP_PAGE_SIZE:
            break
        if not fresh:
            raise CountingError(
                f"more than {LOOKUP_PAGE_SIZE} {action} calls share one timestamp: cannot page"
            )
        end = min(event["EventTime"] for event in page)
    return sorted(seen.values(), key=lambda call: call.at)


@dataclass
class CallCounts:
    """Function calls in one window, by (service, action, resource)."""

    calls: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def of(self, service: str, actions: Iterable[str], resource: str | None = None) -> int:
        wanted = set(actions)
        return sum(
            n
            for (svc, action, res), n in self.calls.items()
            if svc == service and action in wanted and (resource is None or res == resource)
        )

    def to_dict(self) -> dict[str, int]:
        return {"/".join(key): n for key, n in sorted(self.calls.items())}


def count_calls(
    target: Target,
    *,
    since: datetime,
    until: datetime,
    lab_access_key: str = "test",
    actions: dict[str, tuple[str, ...]] = COUNTED_ACTIONS,
) -> CallCounts:
    """The stage's functions' calls in [since, until]; the lab's own (`lab_access_key`) left out."""
    counts = CallCounts()
    for service_actions in actions.values():
        for action in service_actions:
            for call in recorded_calls(target, action, since=since, until=until):
                if call.caller != lab_access_key:
                    counts.calls[(call.service, call.action, call.resource)] += 1
    return counts


@dataclass(frozen=True)
class Window:
    since: datetime
    marker: str
    until: datetime | None = None


def open_window(target: Target) -> Window:
    """Mark the start of a measured window (and the point the engine's record must still reach)."""
    marker = f"calls-marker-{uuid.uuid4().hex}"
    target.client("sqs").list_queues(QueueNamePrefix=marker)
    return Window(datetime.now(UTC), marker)


def check_window_complete(target: Target, window: Window) -> None:
    """The marker made just before the window is still recorded: nothing in the window was evicted."""
    page = target.client("cloudtrail").lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": MARKER_ACTION}],
        StartTime=datetime.fromtimestamp(window.since.timestamp() - 60, UTC),
        EndTime=window.since,
        MaxResults=LOOKUP_PAGE_SIZE,
    )["Events"]
    if not any(window.marker in event["CloudTrailEvent"] for event in page):
        raise CountingError(
            "the engine's request record no longer holds the window's start (CLOUDTRAIL_MAX_EVENTS "
            "reached): measure fewer events"
        )


@dataclass(frozen=True)
class CallsPerEvent:
    """Calls per event of the stage's functions, by phase, with the raw counts behind them."""

    events: int
    # Keys SUCCEEDED after the first phase: fewer than `events` means some went to the DLQ, and
    # their retries are in the counts.
    succeeded: int
    new: dict[str, float]
    duplicate: dict[str, float]
    raw_new: dict[str, int]
    raw_duplicate: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        rows = [
            f"calls per event ({self.events} new events, {self.succeeded} SUCCEEDED; "
            f"then the same {self.events} payloads again)"
        ]
        for label in self.new:
            rows.append(f"  {label:<40} new {self.new[label]:6.2f}   duplicate {self.duplicate[label]:6.2f}")
        return rows


def per_event_figures(counts: CallCounts, target: Target, events: int) -> dict[str, float]:
    table = target.output(Output.TABLE_NAME)
    queue = target.output(Output.QUEUE_NAME)
    figures = {
        "ingest SQS SendMessage (main queue)": counts.of("sqs", ("SendMessage", "SendMessageBatch"), queue),
        "DynamoDB writes (state table)": counts.of("dynamodb", DYNAMODB_WRITES, table),
        "DynamoDB reads (state table)": counts.of("dynamodb", ("GetItem", "BatchGetItem", "Query"), table),
        "EventBridge PutEvents": counts.of("events", ("PutEvents",)),
        "SSM GetParameter": counts.of("ssm", ("GetParameter", "GetParameters")),
    }
    return {label: round(value / events, 3) for label, value in figures.items()}


def _queue_depth(target: Target) -> int:
    attributes = target.client("sqs").get_queue_attributes(
        QueueUrl=target.output(Output.QUEUE_URL),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def _wait_settled(target: Target, keys: Sequence[str], timeout_s: float, settle_s: float) -> int:
    """Wait until every key is SUCCEEDED, or the main queue is empty (a message the worker could not
    settle went to the DLQ), then settle_s for what follows a settled record; the keys SUCCEEDED."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = fetch_statuses(target, keys)
        done = sum(1 for record in records.values() if record.get("status") == RecordStatus.SUCCEEDED.value)
        if done == len(keys) or _queue_depth(target) == 0:
            break
        if time.monotonic() > deadline:
            raise CountingError(f"{done}/{len(keys)} SUCCEEDED after {timeout_s:.0f} s")
        time.sleep(0.5)
    time.sleep(settle_s)
    records = fetch_statuses(target, keys)
    return sum(1 for record in records.values() if record.get("status") == RecordStatus.SUCCEEDED.value)


@dataclass(frozen=True)
class Phase:
    counts: CallCounts
    keys: list[str]
    succeeded: int


def _measure_phase(
    target: Target,
    payloads: Sequence[dict[str, Any]],
    *,
    timeout_s: float,
    settle_s: float,
    concurrency: int,
) -> Phase:
    opened = open_window(target)
    sent = send_payloads(target, payloads, concurrency=concurrency)
    keys = [event.idempotency_key for event in sent]
    succeeded = _wait_settled(target, keys, timeout_s, settle_s)
    check_window_complete(target, opened)
    counts = count_calls(target, since=opened.since, until=datetime.now(UTC))
    return Phase(counts, keys, succeeded)


def measure_calls_per_event(
    target: Target,
    *,
    events: int = 100,
    warmup: int = 20,
    concurrency: int = 4,
    timeout_s: float = 300.0,
    settle_s: float = 5.0,
    log: Callable[[str], None] = print,
) -> CallsPerEvent:
    """Post `events` new events, then the same payloads again, and count the functions' calls.

    A warm-up phase (not counted) first starts the functions' containers: a cold start under load
    can outlast a short local worker timeout, and a timed-out batch is processed again (its calls
    would count twice).
    """
    if target.endpoint_url is None:
        raise CountingError("calls are counted from the local engine's records: use the local target")
    start_recording(target.endpoint_url)
    run = new_run_id(f"calls-{uuid.uuid4().hex[:4]}")
    if warmup:
        log(f"warming up with {warmup} events...")
        _measure_phase(
            target,
            [sample_payload(f"{run}-warmup", index) for index in range(warmup)],
            timeout_s=timeout_s,
            settle_s=0,
            concurrency=concurrency,
        )
    payloads = [sample_payload(run, index) for index in range(events)]
    log(f"posting {events} new events...")
    new = _measure_phase(target, payloads, timeout_s=timeout_s, settle_s=settle_s, concurrency=concurrency)
    log(f"posting the same {events} payloads again (duplicates)...")
    duplicate = _measure_phase(
        target, payloads, timeout_s=timeout_s, settle_s=settle_s, concurrency=concurrency
    )
    if sorted(duplicate.keys) != sorted(new.keys):
        raise CountingError("the duplicates got other keys than the first posts")
    return CallsPerEvent(
        events=events,
        succeeded=new.succeeded,
        new=per_event_figures(new.counts, target, events),
        duplicate=per_event_figures(duplicate.counts, target, events),
        raw_new=new.counts.to_dict(),
        raw_duplicate=duplicate.counts.to_dict(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.harness.calls", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100, help="events per phase (default 100)")
    parser.add_argument("--json", action="store_true", help="print the figures and raw counts as JSON")
    args = parser.parse_args(argv)
    report = measure_calls_per_event(
        load_local_target(), events=args.events, log=lambda m: print(m, file=sys.stderr)
    )
    print(json.dumps(report.to_dict(), indent=2) if args.json else "\n".join(report.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
