"""The local cloud's metrics and alarm agent: publishes what AWS would (SQS queue metrics, EMF and
metric-filter metrics from function logs) and evaluates every alarm by its own definition.

Started by lab.localcloud.agent_process as `python -m lab.localcloud.agent --state-dir DIR
[--account ID]`, one per account whose stages it watches (the engine's own by default); it stops on
SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lab.localcloud.alarm_eval import (
    METRIC_DATA_QUERY_LIMIT,
    AlarmDefinition,
    evaluate,
    evaluation_window,
    metric_data_query,
    values_from_metric_data,
)
from lab.localcloud.engine import EngineClients, EngineInfo
from lab.localcloud.engine_patches.limits import OLDEST_MESSAGES_PATH
from lab.localcloud.log_metrics import Datum, FilterPatternError, emf_datums, filter_datums
from lab.localcloud.state import CloudDir

log = logging.getLogger("lab.agent")

DEFAULT_INTERVAL_SECONDS = 2.0
SQS_NAMESPACE = "AWS/SQS"
# AWS: a message received this many times no longer counts for ApproximateAgeOfOldestMessage
# (it is "moved to the back"), even when the queue has a redrive policy.
AGE_RECEIVE_LIMIT = 3
PUT_METRIC_DATA_LIMIT = 1000
QUEUE_METRIC_ATTRIBUTES = {
    "ApproximateNumberOfMessagesVisible": "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible": "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed": "ApproximateNumberOfMessagesDelayed",
}


def oldest_message_age(messages: Iterable[Mapping[str, Any]], now: float) -> float:
    """ApproximateAgeOfOldestMessage of a queue from the engine's peek of its messages."""
    messages = list(messages)
    if not messages:
        return 0.0
    counted = [m for m in messages if int(m.get("ReceiveCount") or 0) < AGE_RECEIVE_LIMIT] or messages
    oldest = min(float(m["SentTimestamp"]) for m in counted)
    return max(0.0, now - oldest)


# Parallel function workers deliver log lines to the engine out of order: reading only past the
# newest timestamp seen would skip a line stored a moment later with an older timestamp (an EMF
# line lost = a metric datum lost), so every read looks back this far and drops the events already
# seen, by identity. The engine stamps a function's lines when it stores them, at the end of the
# invocation (tests/local/engine/test_alarm_agent.py pins it), so a line is late only by the moment
# between its stamp and its store, never by its invocation's duration: a few seconds cover that.
# Each cycle re-reads the lookback of every group (issue 14: a 60 s lookback made the agent
# re-read, and the engine serialize, every line of the last minute every 2 s).
LOG_LOOKBACK_MS = 5_000


def log_event_identity(event: Mapping[str, Any]) -> tuple[Any, ...]:
    """What tells two log events apart: the eventId where the engine gives one (ministack does
    not), else stream, timestamps and message; identical lines are told apart by their count."""
    if event.get("eventId"):
        return (event["eventId"],)
    return (event.get("logStreamName"), event["timestamp"], event.get("ingestionTime"), event.get("message"))


@dataclass
class LogCursor:
    """How far one log group was read: the newest timestamp, and the events seen in the lookback."""

    newest_ms: int
    # identity -> (timestamp, how many such events were read)
    seen: dict[tuple[Any, ...], tuple[int, int]] = field(default_factory=dict)

    @property
    def start_ms(self) -> int:
        return self.newest_ms - LOG_LOOKBACK_MS


class Agent:
    """One cycle = publish queue metrics, publish log-derived metrics, evaluate alarms."""

    def __init__(self, info: EngineInfo, account: str | None = None) -> None:
        self._info = info
        self._client = EngineClients(info, account)
        self._cursors: dict[str, LogCursor] = {}
        self._started_ms = int(time.time() * 1000)
        self.transitions: list[dict[str, Any]] = []

    # --- SQS ----------------------------------------------------------------------------
    def queue_datums(self, now: float) -> list[Datum]:
        sqs = self._client("sqs")
        urls = [
            url for page in sqs.get_paginator("list_queues").paginate() for url in page.get("QueueUrls", [])
        ]
        peeked = self._peek_messages()
        datums = []
        now_ms = int(now * 1000)
        for url in urls:
            name = url.rstrip("/").rsplit("/", 1)[-1]
            try:
                attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            except sqs.exceptions.QueueDoesNotExist:
                continue
            dims = (("QueueName", name),)
            for metric, attribute in QUEUE_METRIC_ATTRIBUTES.items():
                datums.append(
                    Datum(SQS_NAMESPACE, metric, float(attributes.get(attribute, 0)), "Count", dims, now_ms)
                )
            age = oldest_message_age(peeked.get(name, []), now)
            datums.append(Datum(SQS_NAMESPACE, "ApproximateAgeOfOldestMessage", age, "Seconds", dims, now_ms))
        return datums

    def _peek_messages(self) -> dict[str, list[dict[str, Any]]]:
        """Each queue's oldest message per receive count (what oldest_message_age needs), by queue
        name, through the engine's read-only summary (engine_patches/queue_summary.py: not every
        message, which the engine would render on its event loop every cycle). Not a ReceiveMessage
        (even with VisibilityTimeout 0): that would raise ApproximateReceiveCount and push messages
        towards their DLQ, and hide them from the worker for a moment."""
        url = f"{self._info.endpoint_url}{OLDEST_MESSAGES_PATH}"
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback engine
            data = json.loads(response.read())
        by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for regions in data.get("messages", {}).values():
            for queues in regions.values():
                for queue_url, messages in queues.items():
                    by_name[queue_url.rstrip("/").rsplit("/", 1)[-1]].extend(messages)
        return by_name

    # --- Logs ---------------------------------------------------------------------------
    def log_datums(self) -> list[Datum]:
        logs = self._client("logs")
        datums: list[Datum] = []
        groups = [
            g["logGroupName"]
            for page in logs.get_paginator("describe_log_groups").paginate()
            for g in page["logGroups"]
        ]
        for group in groups:
            events = self._new_events(logs, group)
            if not events:
                continue
            filters = logs.describe_metric_filters(logGroupName=group).get("metricFilters", [])
            for event in events:
                datums.extend(emf_datums(event["message"], int(event["timestamp"])))
            for metric_filter in filters:
                try:
                    datums.extend(filter_datums(metric_filter, events))
                except FilterPatternError as error:
                    log.warning("metric filter %s skipped: %s", metric_filter.get("filterName"), error)
        return datums

    def _new_events(self, logs: Any, group: str) -> list[dict[str, Any]]:
        cursor = self._cursors.setdefault(group, LogCursor(self._started_ms))
        events: list[dict[str, Any]] = []
        # Never before the agent started: earlier lines belong to a previous lab session.
        kwargs: dict[str, Any] = {"logGroupName": group, "startTime": max(self._started_ms, cursor.start_ms)}
        while True:
            page = logs.filter_log_events(**kwargs)
            events.extend(page.get("events", []))
            token = page.get("nextToken")
            if not token:
                break
            kwargs["nextToken"] = token
        fresh: list[dict[str, Any]] = []
        occurrences: Counter[tuple[Any, ...]] = Counter()
        for event in events:
            identity = log_event_identity(event)
            occurrences[identity] += 1
            already = cursor.seen.get(identity, (0, 0))[1]
            if occurrences[identity] > already:
                fresh.append(event)
                cursor.seen[identity] = (int(event["timestamp"]), occurrences[identity])
        if events:
            cursor.newest_ms = max(cursor.newest_ms, *(int(e["timestamp"]) for e in events))
        horizon = cursor.start_ms
        cursor.seen = {key: seen for key, seen in cursor.seen.items() if seen[0] >= horizon}
        return fresh

    # --- Publishing and alarms ----------------------------------------------------------
    def publish(self, datums: list[Datum]) -> None:
        cloudwatch = self._client("cloudwatch")
        by_namespace: dict[str, list[Datum]] = defaultdict(list)
        for datum in datums:
            by_namespace[datum.namespace].append(datum)
        for namespace, items in by_namespace.items():
            for start in range(0, len(items), PUT_METRIC_DATA_LIMIT):
                chunk = items[start : start + PUT_METRIC_DATA_LIMIT]
                cloudwatch.put_metric_data(Namespace=namespace, MetricData=[d.to_put() for d in chunk])

    def evaluate_alarms(self, now: float) -> dict[str, Any]:
        cloudwatch = self._client("cloudwatch")
        alarms = [
            alarm
            for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"])
            for alarm in page["MetricAlarms"]
        ]
        states: dict[str, str] = {}
        unsupported: list[str] = []
        definitions: list[AlarmDefinition] = []
        for alarm in alarms:
            definition = AlarmDefinition.from_describe(alarm)
            if definition is None:
                unsupported.append(alarm["AlarmName"])
            else:
                definitions.append(definition)
        values = self._alarm_values(cloudwatch, definitions, now)
        for index, definition in enumerate(definitions):
            decision = evaluate(definition, values[index], now)
            states[definition.name] = decision.state
            if decision.changes(definition):
                cloudwatch.set_alarm_state(
                    AlarmName=definition.name,
                    StateValue=decision.state,
                    StateReason=decision.reason[:1023],
                    StateReasonData=json.dumps({"version": "1.0", "recentDatapoints": list(decision.values)}),
                )
                transition = {
                    "at": now,
                    "alarm": definition.name,
                    "from": definition.state,
                    "to": decision.state,
                }
                self.transitions = [*self.transitions[-49:], transition]
                log.info(
                    "%s: %s -> %s (%s)", definition.name, definition.state, decision.state, decision.reason
                )
        return {"alarms": states, "unsupported": unsupported}

    def _alarm_values(
        self, cloudwatch: Any, definitions: list[AlarmDefinition], now: float
    ) -> list[dict[int, float]]:
        """Each alarm's per-period values over its evaluation window, in one GetMetricData call per
        500 alarms (one GetMetricStatistics per alarm per cycle was most of the agent's requests to
        the engine; issue 14). One time range covers every window: evaluate() reads only the
        periods of the alarm's own window."""
        if not definitions:
            return []
        windows = [evaluation_window(definition, now) for definition in definitions]
        start, end = min(w[0] for w in windows), max(w[1] for w in windows)
        results: dict[str, tuple[list[Any], list[float]]] = {}
        for first in range(0, len(definitions), METRIC_DATA_QUERY_LIMIT):
            queries = [
                metric_data_query(definition, f"alarm{first + offset}")
                for offset, definition in enumerate(definitions[first : first + METRIC_DATA_QUERY_LIMIT])
            ]
            pages = cloudwatch.get_paginator("get_metric_data").paginate(
                MetricDataQueries=queries,
                StartTime=datetime.fromtimestamp(start, UTC),
                EndTime=datetime.fromtimestamp(end, UTC),
            )
            for page in pages:
                for result in page["MetricDataResults"]:
                    timestamps, values = results.setdefault(result["Id"], ([], []))
                    timestamps.extend(result.get("Timestamps", []))
                    values.extend(result.get("Values", []))
        return [
            values_from_metric_data(definition, *results.get(f"alarm{index}", ([], [])))
            for index, definition in enumerate(definitions)
        ]

    def cycle(self) -> dict[str, Any]:
        now = time.time()
        datums = self.queue_datums(now) + self.log_datums()
        self.publish(datums)
        evaluated = self.evaluate_alarms(now)
        return {"lastCycleAt": now, "published": len(datums), **evaluated, "transitions": self.transitions}


def _write_status(path: Path, status: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def run(
    state: CloudDir, interval: float, account: str | None = None, engine_json: Path | None = None
) -> None:
    info = EngineInfo(**json.loads((engine_json or state.engine_json).read_text()))
    agent = Agent(info, account)
    stopping = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("agent started for %s (engine %s, every %.1f s)", state.root, info.endpoint_url, interval)
    failures = 0
    while not stopping:
        started = time.monotonic()
        try:
            status = agent.cycle()
            failures = 0
        except Exception as error:  # keep the agent alive through a transient engine error
            failures += 1
            log.exception("agent cycle failed (%d in a row)", failures)
            status = {"lastCycleAt": time.time(), "error": f"{type(error).__name__}: {error}"}
            if failures >= 30:
                raise
        _write_status(state.agent_status, {"pid": os.getpid(), "intervalSeconds": interval, **status})
        remaining = interval - (time.monotonic() - started)
        deadline = time.monotonic() + max(0.0, remaining)
        while not stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, interval))
    log.info("agent stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_SECONDS)
    parser.add_argument("--account", default=None, help="the account to watch (default: the engine's own)")
    parser.add_argument(
        "--engine-json", type=Path, default=None, help="the engine's record (default: in --state-dir)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    run(CloudDir(args.state_dir), args.interval, args.account, args.engine_json)


if __name__ == "__main__":
    main()
