"""The relay: outcomes read from the state table's stream, published to EventBridge (what that
guarantees a consumer: docs/architecture.md, "Event guarantees").

Stream batches come from the event source mapping (ReportBatchItemFailures on): the outcomes of
a batch are published in calls of <= 10 entries, in stream order. When EventBridge refuses an
entry, the relay answers the sequence number of that record and of every record after it:
Lambda checkpoints at the lowest sequence number reported and retries from there (AWS Lambda
Developer Guide, "Configuring partial batch response with DynamoDB and Lambda"), so nothing after
a refused event is lost and nothing before it is sent again. A PutEvents call that fails outright
raises: the invocation fails, and the mapping bisects the batch and retries it.

An operator hands back a batch the mapping gave up on (its on-failure record, whose
DDBStreamBatchInfo names the shard and the first and last sequence numbers) by invoking the relay
with that record: the relay reads those records from the stream (readable for 24 hours) and
publishes their outcomes with the same event ids (ops/runbooks/event-relay.md). Past those 24 hours
DynamoDB Streams answers TrimmedDataAccessException (a sequence number older than the trim point)
or ResourceNotFoundException (the shard itself is gone) (Amazon DynamoDB Streams API Reference,
GetShardIterator and GetRecords, Errors): the relay answers both with the runbook's way out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import ClientError

from functions.common.events import EventPublisher
from functions.common.observability import fields, logger
from functions.relay.outcomes import outcome_event, sequence_number

BATCH_INFO_KEY = "DDBStreamBatchInfo"
# GetRecords pages read for one handed-back batch before giving up: a batch is at most the
# mapping's batch size (app/components/relay.py, RELAY_BATCH_SIZE: 1,000 records), GetRecords
# answers up to 1,000 records per page, and a page may be empty while later ones are not
# (Amazon DynamoDB Streams API Reference, GetRecords).
MAX_REPLAY_PAGES = 50
# What DynamoDB Streams answers for records past their 24 hours: the records were trimmed, or the
# shard that held them was deleted.
GONE_ERROR_CODES = frozenset({"TrimmedDataAccessException", "ResourceNotFoundException"})


class ReplayError(RuntimeError):
    """A handed-back batch could not be published in full (the invocation fails, naming why)."""


@dataclass(frozen=True)
class StreamBatch:
    """The part of an on-failure record that locates its batch in the stream."""

    stream_arn: str
    shard_id: str
    first: str
    last: str
    size: int

    @classmethod
    def from_failure_record(cls, record: dict[str, Any]) -> StreamBatch:
        info = record.get(BATCH_INFO_KEY)
        try:
            assert isinstance(info, dict)
            return cls(
                stream_arn=str(info["streamArn"]),
                shard_id=str(info["shardId"]),
                first=str(info["startSequenceNumber"]),
                last=str(info["endSequenceNumber"]),
                size=int(info.get("batchSize", 0)),
            )
        except (AssertionError, KeyError, TypeError, ValueError):
            raise ReplayError(f"not an on-failure record of a DynamoDB stream mapping: {record!r}") from None


@dataclass(frozen=True)
class ReplayResult:
    records: int
    outcomes: int
    published: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class Relay:
    def __init__(self, publisher: EventPublisher, streams: Any | None = None) -> None:
        self._publisher = publisher
        self._streams = streams

    def publish(self, records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
        """Publish the outcomes among `records`; the partial batch response for the mapping."""
        pending = [(record, event) for record in records if (event := outcome_event(record)) is not None]
        result = self._publisher.publish([event for _, event in pending])
        logger.info(
            "stream batch relayed",
            extra=fields(RECORD_COUNT=len(records), EVENT_COUNT=result.published),
        )
        if result.complete:
            return {"batchItemFailures": []}
        assert result.first_unpublished is not None
        retry = [sequence_number(record) for record, _ in pending[result.first_unpublished :]]
        logger.warning(
            "events refused; the stream retries from the first",
            extra=fields(SEQUENCE_NUMBER=retry[0], REASON=result.reason),
        )
        return {"batchItemFailures": [{"itemIdentifier": number} for number in retry]}

    def replay(self, batch: StreamBatch) -> ReplayResult:
        """Read a handed-back batch from the stream and publish its outcomes; raises unless all went out."""
        if self._streams is None:
            raise ReplayError("this relay has no DynamoDB Streams client")
        try:
            records = self._read(batch)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in GONE_ERROR_CODES:
                raise
            raise _gone(batch) from error
        if not records or sequence_number(records[0]) != batch.first:
            raise _gone(batch)
        response = self.publish(records)
        if response["batchItemFailures"]:
            raise ReplayError(
                f"EventBridge refused events from sequence number {response['batchItemFailures'][0]}"
            )
        outcomes = sum(1 for record in records if outcome_event(record) is not None)
        return ReplayResult(records=len(records), outcomes=outcomes, published=outcomes)

    def _read(self, batch: StreamBatch) -> list[dict[str, Any]]:
        assert self._streams is not None
        iterator = self._streams.get_shard_iterator(
            StreamArn=batch.stream_arn,
            ShardId=batch.shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            SequenceNumber=batch.first,
        )["ShardIterator"]
        last = int(batch.last)
        records: list[dict[str, Any]] = []
        for _ in range(MAX_REPLAY_PAGES):
            page = self._streams.get_records(ShardIterator=iterator)
            for record in page.get("Records", []):
                if int(sequence_number(record)) > last:
                    return records
                records.append(record)
            if records and int(sequence_number(records[-1])) == last:
                return records
            # An empty page is not the end while the shard has a next iterator: GetRecords may
            # need several calls to reach the part of a shard that holds records.
            iterator = page.get("NextShardIterator")
            if not iterator:
                break
        raise ReplayError(f"the stream ended before sequence number {batch.last}")


def _gone(batch: StreamBatch) -> ReplayError:
    return ReplayError(
        f"the stream no longer holds sequence number {batch.first} (records are kept 24 hours): "
        "rebuild the events of that period from the table (ops/runbooks/event-relay.md)"
    )
