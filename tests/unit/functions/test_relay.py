"""The relay: which stream records are outcomes (and that the mapping's filter agrees), PutEvents in
chunks of 10 with FailedEntryCount checked, the partial batch response, and the replay of a batch
handed back from the on-failure destination."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from functions.common.events import PUT_EVENTS_MAX_ENTRIES, Event, EventPublisher, event_id_for
from functions.common.names import DetailType, ErrorType, RecordStatus
from functions.common.state_table import StateTable
from functions.relay import handler as relay_handler
from functions.relay.outcomes import OUTCOME_FILTER_PATTERN, outcome_event
from functions.relay.relay import Relay, ReplayError, StreamBatch
from functions.worker import handler as worker
from tests.unit.functions.orders import order, send
from tests.unit.functions.sqs_events import sqs_event
from tests.unit.functions.stream_relay import StreamMapping, matches


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    for cached in (worker.dependencies, relay_handler.relay):
        cached.cache_clear()
    yield
    for cached in (worker.dependencies, relay_handler.relay):
        cached.cache_clear()


def settle(stage: Any, context: Any, *payloads: Any) -> list[str]:
    """Send and process (worker) these payloads; their keys."""
    keys = [send(stage, payload) for payload in payloads]
    worker.lambda_handler(sqs_event(stage.receive_all(stage.queue_url)), context)
    return keys


def every_kind_of_change(stage: Any, lambda_context: Any) -> list[str]:
    """A stream holding each kind of change the stage makes to the state table; the settled keys."""
    state = StateTable(stage.dynamodb, stage.table_name, ttl_days=1)
    succeeded = settle(stage, lambda_context, order(1), order(2))
    stage.set_failure_mode("poison_payload")
    failed = settle(stage, lambda_context, order(3))
    stage.set_failure_mode("none")
    # A redrive's mark on a SUCCEEDED key and its quarantine of a FAILED one (not outcomes).
    state.record_redrive(succeeded[0], redrive_count=1, job_id="job-1", now=1.0)
    state.quarantine(failed[0], redrive_count=2, job_id="job-1", now=1.0)
    # An attempt naming the error it is about to die of (slow_downstream), then the item's expiry.
    state.begin("key-killed", checksum="sha256:x", now=1.0, lease_seconds=1)
    state.annotate_error("key-killed", attempts=1, error_type=ErrorType.TIMEOUT.value)
    stage.dynamodb.delete_item(TableName=stage.table_name, Key={"idempotencyKey": {"S": "key-killed"}})
    return [*succeeded, *failed]


def test_only_outcomes_become_events_and_the_mapping_filter_passes_exactly_those(
    stage: Any, lambda_context: Any
) -> None:
    settled = every_kind_of_change(stage, lambda_context)
    records = StreamMapping(stage.table_name).all_records()
    assert {record["eventName"] for record in records} == {"INSERT", "MODIFY", "REMOVE"}

    events = {record["dynamodb"]["SequenceNumber"]: outcome_event(record) for record in records}
    outcome_keys = sorted(event.detail["idempotencyKey"] for event in events.values() if event is not None)
    assert outcome_keys == sorted(settled)
    for record in records:
        assert matches(OUTCOME_FILTER_PATTERN, record) == (
            events[record["dynamodb"]["SequenceNumber"]] is not None
        )


def test_an_outcome_event_carries_the_record_and_an_id_fixed_by_the_outcome(
    stage: Any, lambda_context: Any
) -> None:
    stage.set_failure_mode("poison_payload")
    [key] = settle(stage, lambda_context, order(5))
    stage.set_failure_mode("none")
    [failure_record] = [r for r in StreamMapping(stage.table_name).all_records() if outcome_event(r)]
    item = stage.state(key)

    event = outcome_event(failure_record)

    assert event is not None
    assert event.detail_type is DetailType.FAILURE
    assert event.detail == {
        "eventId": event_id_for(key, RecordStatus.FAILED.value, f"{item['firstSeenAt']}/1"),
        "idempotencyKey": key,
        "messageId": item["messageId"],
        "status": RecordStatus.FAILED.value,
        "errorType": ErrorType.SCHEMA_VALIDATION.value,
        "attempts": 1,
        "processedAt": item["updatedAt"],
    }
    # Each attempt of a key is its own outcome; the same attempt read again is the same outcome.
    assert event_id_for(key, "FAILED", f"{item['firstSeenAt']}/2") != event.event_id
    assert outcome_event(failure_record) == event


class FakeEvents:
    """PutEvents that refuses given event ids (the first time only, or always) and records each call."""

    def __init__(self, refuse_once: set[str] = frozenset(), refuse_always: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.calls: list[list[dict[str, Any]]] = []
        self.accepted: list[str] = []
        self._refuse_once = set(refuse_once)
        self._refuse_always = set(refuse_always)

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        assert len(Entries) <= PUT_EVENTS_MAX_ENTRIES
        self.calls.append(Entries)
        results: list[dict[str, Any]] = []
        for entry in Entries:
            event_id = json.loads(entry["Detail"])["eventId"]
            if event_id in self._refuse_always or event_id in self._refuse_once:
                self._refuse_once.discard(event_id)
                results.append({"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"})
            else:
                self.accepted.append(event_id)
                results.append({"EventId": event_id})
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


def events(n: int) -> list[Event]:
    return [Event(DetailType.SUCCESS, {"eventId": f"e{i}", "idempotencyKey": f"k{i}"}) for i in range(n)]


def test_put_events_goes_in_calls_of_ten_and_retries_a_refused_entry_once() -> None:
    client = FakeEvents(refuse_once={"e3", "e15"})

    result = EventPublisher(client, "bus").publish(events(23))

    assert [len(call) for call in client.calls] == [10, 1, 10, 1, 3]
    assert (result.published, result.complete) == (23, True)
    assert sorted(client.accepted) == sorted(f"e{i}" for i in range(23))


def test_put_events_stops_at_the_first_chunk_with_an_entry_still_refused() -> None:
    client = FakeEvents(refuse_always={"e13"})

    result = EventPublisher(client, "bus").publish(events(25))

    assert [len(call) for call in client.calls] == [10, 10, 1]  # the third chunk is not sent
    assert (result.published, result.first_unpublished) == (19, 13)
    assert result.reason == "ThrottlingException: slow down"


def test_a_put_events_call_that_fails_outright_raises() -> None:
    class Denied:
        def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "PutEvents")

    with pytest.raises(ClientError):
        EventPublisher(Denied(), "bus").publish(events(1))


def test_refused_events_come_back_from_the_first_refused_record_and_go_out_once_accepted(
    stage: Any, lambda_context: Any
) -> None:
    keys = settle(stage, lambda_context, *(order(n) for n in range(12)))
    mapping = StreamMapping(stage.table_name)
    outcomes = [event for record in mapping.pending() if (event := outcome_event(record))]
    refused = outcomes[4].event_id  # the fifth outcome of the batch, in the first chunk
    client = FakeEvents(refuse_always={refused})
    relay = Relay(EventPublisher(client, stage.bus_name))

    first = mapping.invoke(lambda event: relay.publish(event["Records"]))

    assert first is not None
    assert first.response is not None
    failed = [item["itemIdentifier"] for item in first.response["batchItemFailures"]]
    outcome_records = [r for r in first.records if outcome_event(r)]
    assert failed == [r["dynamodb"]["SequenceNumber"] for r in outcome_records[4:]]
    assert len(client.calls) == 2  # the first chunk and its one retry: the second chunk waits
    client._refuse_always.clear()

    mapping.drain(lambda event: relay.publish(event["Records"]))

    assert set(client.accepted) == {event.event_id for event in outcomes}
    # The five accepted after the refused one in its chunk went out again with it (same ids).
    assert len(client.accepted) == 12 + 5
    assert sorted(e.detail["idempotencyKey"] for e in outcomes) == sorted(keys)


def on_failure_record(mapping: StreamMapping, records: list[dict[str, Any]]) -> dict[str, Any]:
    """What the mapping sends its on-failure destination when it gives a batch up (AWS Lambda
    Developer Guide, "Retaining discarded batch records for a DynamoDB event source in Lambda")."""
    return {
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 11},
        "version": "1.0",
        "DDBStreamBatchInfo": {
            "shardId": mapping.shard_id,
            "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
            "batchSize": len(records),
            "streamArn": mapping.stream_arn,
        },
    }


def test_a_batch_handed_back_from_the_on_failure_destination_is_published_again(
    stage: Any, lambda_context: Any
) -> None:
    keys = settle(stage, lambda_context, *(order(n) for n in range(3)))
    settle(stage, lambda_context, order(99))  # after the handed-back batch: not published by it
    mapping = StreamMapping(stage.table_name)
    every = mapping.all_records()
    third_outcome = [i for i, record in enumerate(every) if outcome_event(record)][2]
    records = every[: third_outcome + 1]  # the three keys' changes

    answer = relay_handler.lambda_handler(on_failure_record(mapping, records), lambda_context)

    assert answer == {"records": len(records), "outcomes": 3, "published": 3}
    assert sorted(e["detail"]["idempotencyKey"] for e in stage.captured_events()) == sorted(keys)


def test_a_handed_back_batch_the_stream_no_longer_holds_fails_loudly(stage: Any, lambda_context: Any) -> None:
    settle(stage, lambda_context, order(1))
    mapping = StreamMapping(stage.table_name)
    records = mapping.all_records()
    gone = on_failure_record(mapping, records)
    gone["DDBStreamBatchInfo"]["startSequenceNumber"] = str(int(records[0]["dynamodb"]["SequenceNumber"]) + 1)
    gone["DDBStreamBatchInfo"]["endSequenceNumber"] = str(int(records[-1]["dynamodb"]["SequenceNumber"]) + 5)

    with pytest.raises(ReplayError):
        relay_handler.lambda_handler(gone, lambda_context)
    with pytest.raises(ReplayError, match="not an on-failure record"):
        StreamBatch.from_failure_record({"DDBStreamBatchInfo": {"shardId": "s"}})


def stubbed_streams() -> tuple[Any, Stubber]:
    """A DynamoDB Streams client whose answers each test gives (Stubber checks every request and
    answer against the service's API model)."""
    client = boto3.client("dynamodbstreams", region_name="us-east-1")
    return client, Stubber(client)


# Sequence numbers as DynamoDB Streams writes them (21 to 40 digits).
FIRST, LAST = "100000000000000000001", "100000000000000000002"


def replay_batch(records: list[dict[str, Any]]) -> StreamBatch:
    return StreamBatch(
        stream_arn="arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-11-29T00:00:00.000",
        shard_id="shardId-00000001732838400000-abcdef01",
        first=records[0]["dynamodb"]["SequenceNumber"],
        last=records[-1]["dynamodb"]["SequenceNumber"],
        size=len(records),
    )


@pytest.mark.parametrize(
    ("operation", "code"),
    [
        # A sequence number older than the trim point (24 hours).
        ("get_shard_iterator", "TrimmedDataAccessException"),
        # Trimmed between GetShardIterator and GetRecords.
        ("get_records", "TrimmedDataAccessException"),
        # The shard that held the records was deleted with them.
        ("get_shard_iterator", "ResourceNotFoundException"),
    ],
)
def test_a_batch_past_the_streams_24_hours_is_refused_with_the_way_out(operation: str, code: str) -> None:
    """AWS answers a read past the trim point with an error, not with later records (Amazon DynamoDB
    Streams API Reference, GetShardIterator and GetRecords, Errors: TrimmedDataAccessException,
    ResourceNotFoundException): the replay names the runbook's way out, as for any record gone."""
    client, stubber = stubbed_streams()
    batch = replay_batch([{"dynamodb": {"SequenceNumber": FIRST}}, {"dynamodb": {"SequenceNumber": LAST}}])
    if operation == "get_records":
        stubber.add_response("get_shard_iterator", {"ShardIterator": "iterator-1"})
    stubber.add_client_error(operation, service_error_code=code, service_message="gone", http_status_code=400)
    publisher = FakeEvents()

    gone = f"no longer holds sequence number {FIRST}.*event-relay.md"
    with stubber, pytest.raises(ReplayError, match=gone):
        Relay(EventPublisher(publisher, "bus"), client).replay(batch)

    assert publisher.calls == []


def test_a_stream_error_that_is_not_about_age_is_raised_as_it_is() -> None:
    client, stubber = stubbed_streams()
    batch = replay_batch([{"dynamodb": {"SequenceNumber": FIRST}}])
    stubber.add_client_error(
        "get_shard_iterator", service_error_code="InternalServerError", http_status_code=500
    )

    with stubber, pytest.raises(ClientError, match="InternalServerError"):
        Relay(EventPublisher(FakeEvents(), "bus"), client).replay(batch)


def test_a_replay_reads_past_an_empty_page_to_the_batchs_last_record(stage: Any, lambda_context: Any) -> None:
    """GetRecords may answer an empty page before the records (Amazon DynamoDB Streams API Reference,
    GetRecords): an empty page with a next iterator is not the end of the batch."""
    keys = settle(stage, lambda_context, order(1), order(2))
    mapping = StreamMapping(stage.table_name)
    streams = boto3.client("dynamodbstreams")
    iterator = streams.get_shard_iterator(
        StreamArn=mapping.stream_arn, ShardId=mapping.shard_id, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]  # as GetRecords answers them
    client, stubber = stubbed_streams()
    stubber.add_response("get_shard_iterator", {"ShardIterator": "iterator-1"})
    stubber.add_response("get_records", {"Records": [], "NextShardIterator": "iterator-2"})
    stubber.add_response("get_records", {"Records": records[:1], "NextShardIterator": "iterator-3"})
    stubber.add_response("get_records", {"Records": [], "NextShardIterator": "iterator-4"})
    stubber.add_response("get_records", {"Records": records[1:], "NextShardIterator": "iterator-5"})
    publisher = FakeEvents()

    with stubber:
        result = Relay(EventPublisher(publisher, "bus"), client).replay(replay_batch(records))
        stubber.assert_no_pending_responses()

    assert (result.records, result.outcomes, result.published) == (len(records), 2, 2)
    published = [json.loads(entry["Detail"])["idempotencyKey"] for call in publisher.calls for entry in call]
    assert sorted(published) == sorted(keys)
