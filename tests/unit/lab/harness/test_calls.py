"""The call counter over the engine's request records: paging LookupEvents (newest 50 first, no
token, an inclusive end), attribution to the functions (the lab's own key left out), per-event
figures, and the refusal to count an incomplete window."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.common.names import Output
from lab.harness.calls import (
    LOOKUP_PAGE_SIZE,
    CountingError,
    Window,
    check_window_complete,
    count_calls,
    per_event_figures,
    recorded_calls,
)
from stage_client.target import Target

START = datetime(2027, 1, 1, tzinfo=UTC)


def record(
    n: int, action: str, *, key: str = "ASIAFUNCTION", at: datetime | None = None, **params: Any
) -> dict:
    source = {
        "UpdateItem": "dynamodb",
        "BatchGetItem": "dynamodb",
        "SendMessage": "sqs",
        "PutEvents": "events",
    }
    return {
        "EventId": f"e-{action}-{n}",
        "EventName": action,
        "EventTime": at or START + timedelta(milliseconds=n),
        "CloudTrailEvent": json.dumps(
            {
                "eventSource": f"{source.get(action, 'sqs')}.amazonaws.com",
                "userIdentity": {"accessKeyId": key},
                "requestParameters": params,
            }
        ),
    }


class FakeCloudTrail:
    """LookupEvents as the engine answers it: filtered by name and time (both ends inclusive),
    newest first, at most 50, no NextToken."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.calls = 0

    def lookup_events(self, LookupAttributes: list[dict[str, str]], StartTime: datetime, EndTime: datetime,
                      MaxResults: int) -> dict[str, Any]:  # fmt: skip
        self.calls += 1
        name = LookupAttributes[0]["AttributeValue"]
        matching = [
            event
            for event in self.events
            if event["EventName"] == name and StartTime <= event["EventTime"] <= EndTime
        ]
        matching.sort(key=lambda event: event["EventTime"], reverse=True)
        return {"Events": matching[: min(MaxResults, LOOKUP_PAGE_SIZE)]}


def target_with(cloudtrail: FakeCloudTrail) -> Target:
    return Target(
        name="fake",
        outputs={Output.TABLE_NAME.value: "state", Output.QUEUE_NAME.value: "main"},
        api_url="http://127.0.0.1:9",
        region="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        _clients={"cloudtrail": cloudtrail},
    )


def test_every_call_of_a_window_is_read_across_pages_and_none_twice() -> None:
    writes = [record(n, "UpdateItem", TableName="state") for n in range(137)]
    # Three calls at the very instant a page ends: the next page starts there again (inclusive end).
    writes += [
        record(1000 + n, "UpdateItem", at=START + timedelta(milliseconds=86), TableName="state")
        for n in range(3)
    ]
    cloudtrail = FakeCloudTrail(writes)

    calls = recorded_calls(
        target_with(cloudtrail), "UpdateItem", since=START, until=START + timedelta(seconds=1)
    )

    assert len(calls) == 140
    assert cloudtrail.calls >= 3
    assert [call.at for call in calls] == sorted(call.at for call in calls)


def test_more_than_a_page_at_one_instant_cannot_be_counted() -> None:
    same = [record(n, "UpdateItem", at=START, TableName="state") for n in range(LOOKUP_PAGE_SIZE + 1)]

    with pytest.raises(CountingError, match="share one timestamp"):
        recorded_calls(target_with(FakeCloudTrail(same)), "UpdateItem", since=START, until=START)


def test_functions_calls_are_counted_by_action_and_resource_and_the_labs_left_out() -> None:
    events = [
        record(1, "UpdateItem", TableName="state"),
        record(2, "UpdateItem", TableName="state"),
        record(3, "UpdateItem", key="test", TableName="state"),  # the lab's own client
        record(4, "BatchGetItem", RequestItems={"state": {"Keys": []}}),
        record(5, "SendMessage", QueueUrl="http://127.0.0.1:9/000000000000/main"),
        record(6, "PutEvents", Entries=[{"EventBusName": "bus"}, {"EventBusName": "bus"}]),
    ]
    target = target_with(FakeCloudTrail(events))

    counts = count_calls(target, since=START, until=START + timedelta(seconds=1))

    assert counts.to_dict() == {
        "dynamodb/UpdateItem/state": 2,
        "dynamodb/BatchGetItem/state": 1,
        "sqs/SendMessage/main": 1,
        "events/PutEvents/bus": 1,
    }
    figures = per_event_figures(counts, target, events=2)
    assert figures["DynamoDB writes (state table)"] == 1.0
    assert figures["DynamoDB reads (state table)"] == 0.5
    assert figures["ingest SQS SendMessage (main queue)"] == 0.5
    assert figures["EventBridge PutEvents"] == 0.5


def test_a_window_whose_start_was_evicted_is_refused() -> None:
    marker = record(1, "ListQueues", QueueNamePrefix="calls-marker-abc")
    window = Window(since=START + timedelta(seconds=1), marker="calls-marker-abc")

    check_window_complete(target_with(FakeCloudTrail([marker])), window)
    with pytest.raises(CountingError, match="no longer holds"):
        check_window_complete(target_with(FakeCloudTrail([])), window)
