"""The metrics agent's log reading: each log event is turned into metrics exactly once."""

from __future__ import annotations

from typing import Any

from lab.localcloud.agent import LOG_LOOKBACK_MS, Agent
from lab.localcloud.engine import EngineInfo


class FakeLogs:
    """filter_log_events over a list of events, honouring startTime (inclusive) and paging."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.page_size = 2

    def add(self, message: str, timestamp: int, *, event_id: str | None = None) -> None:
        # Like ministack: no eventId unless a test gives one (CloudWatch Logs on AWS does).
        event: dict[str, Any] = {"logStreamName": "s", "timestamp": timestamp, "message": message}
        if event_id:
            event["eventId"] = event_id
        self.events.append(event)

    def filter_log_events(
        self, logGroupName: str, startTime: int, nextToken: str | None = None
    ) -> dict[str, Any]:
        matching = [e for e in self.events if e["timestamp"] >= startTime]
        offset = int(nextToken or 0)
        page = matching[offset : offset + self.page_size]
        result: dict[str, Any] = {"events": page}
        if offset + self.page_size < len(matching):
            result["nextToken"] = str(offset + self.page_size)
        return result


def agent() -> Agent:
    instance = Agent(EngineInfo(pid=1, port=1, auth=True, started_at=0.0))
    instance._started_ms = 1_000
    return instance


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["message"] for e in events]


def test_events_before_the_agent_started_are_not_replayed():
    logs = FakeLogs()
    logs.add("old", 999)
    logs.add("new", 1_000)
    assert ids(agent()._new_events(logs, "g")) == ["new"]


def test_each_event_is_returned_once_across_cycles_even_at_the_same_millisecond():
    reader = agent()
    logs = FakeLogs()
    for event_id in ("a", "b", "c"):
        logs.add(event_id, 1_500)
    assert ids(reader._new_events(logs, "g")) == ["a", "b", "c"]  # three pages of two

    logs.add("d", 1_500)  # same millisecond as the cursor
    logs.add("e", 1_700)
    assert ids(reader._new_events(logs, "g")) == ["d", "e"]
    assert reader._new_events(logs, "g") == []


def test_log_groups_have_cursors_of_their_own():
    reader = agent()
    logs = FakeLogs()
    logs.add("x", 2_000)
    assert ids(reader._new_events(logs, "one")) == ["x"]
    assert ids(reader._new_events(logs, "two")) == ["x"]


def test_a_line_that_arrives_late_with_an_older_timestamp_is_still_read_once():
    # Parallel invocations deliver their lines out of order: a line written at 1_500 can reach
    # the engine after one written at 1_900 was already read. Its metric must not be lost.
    reader = agent()
    logs = FakeLogs()
    logs.add("later", 1_900)
    assert ids(reader._new_events(logs, "g")) == ["later"]
    logs.add("late", 1_500)
    assert ids(reader._new_events(logs, "g")) == ["late"]
    assert reader._new_events(logs, "g") == []


def test_ids_older_than_the_lookback_are_forgotten():
    reader = agent()
    logs = FakeLogs()
    logs.add("a", 1_000)
    assert ids(reader._new_events(logs, "g")) == ["a"]
    logs.events.clear()
    logs.add("b", 1_000 + LOG_LOOKBACK_MS + 5)
    assert ids(reader._new_events(logs, "g")) == ["b"]
    assert [key[-1] for key in reader._cursors["g"].seen] == ["b"]


def test_identical_lines_are_each_counted_once():
    # Two invocations of one worker process can print the same EMF line in the same millisecond.
    reader = agent()
    logs = FakeLogs()
    logs.add("emf", 1_200)
    logs.add("emf", 1_200)
    assert ids(reader._new_events(logs, "g")) == ["emf", "emf"]
    logs.add("emf", 1_200)
    assert ids(reader._new_events(logs, "g")) == ["emf"]
    assert reader._new_events(logs, "g") == []


def test_event_ids_are_used_where_the_engine_gives_them():
    reader = agent()
    logs = FakeLogs()
    logs.add("same text", 1_200, event_id="1")
    logs.add("same text", 1_200, event_id="2")
    assert ids(reader._new_events(logs, "g")) == ["same text", "same text"]
    assert reader._new_events(logs, "g") == []
