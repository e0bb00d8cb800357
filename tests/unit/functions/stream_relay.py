"""The relay's event source mapping in miniature: the moto state table's stream, read from a
checkpoint, filtered by the mapping's pattern, handed to the relay, checkpointed as Lambda does.

Checkpointing as documented for DynamoDB stream mappings (AWS Lambda Developer Guide,
"Configuring partial batch response with DynamoDB and Lambda"): a successful invocation with no
batch item failures moves the checkpoint past the batch; reported failures move it to the lowest
reported sequence number; an invocation that raised (or was killed) leaves it where it was, so the
same records come again. Records the filter drops are checkpointed past (Lambda discards them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3

from functions.relay.outcomes import OUTCOME_FILTER_PATTERN


class Killed(BaseException):
    """The runtime ending an invocation: nothing after it runs, no handler catches it."""


def matches(pattern: dict[str, Any], record: dict[str, Any]) -> bool:
    """Lambda's filter rule for the operators the stage uses: nested keys, and a list of exact values
    at a leaf (AWS Lambda Developer Guide, "Control which events Lambda sends to your function",
    filter rule syntax). Any other operator is refused, so a pattern this cannot judge fails loudly."""
    for name, rule in pattern.items():
        value = record.get(name) if isinstance(record, dict) else None
        if isinstance(rule, dict):
            if not isinstance(value, dict) or not matches(rule, value):
                return False
        elif isinstance(rule, list):
            if any(not isinstance(allowed, str | int | float | bool) for allowed in rule):
                raise NotImplementedError(f"filter operator not modelled here: {rule!r}")
            if value not in rule:
                return False
        else:
            raise NotImplementedError(f"filter rule not modelled here: {rule!r}")
    return True


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record as the mapping hands it to the function (creation time in epoch seconds)."""
    change = dict(record["dynamodb"])
    created = change.get("ApproximateCreationDateTime")
    if created is not None and hasattr(created, "timestamp"):
        change["ApproximateCreationDateTime"] = int(created.timestamp())
    return {**record, "dynamodb": change, "eventSourceARN": stream_arn}


@dataclass
class Invocation:
    records: list[dict[str, Any]]
    response: dict[str, Any] | None
    error: BaseException | None


@dataclass
class StreamMapping:
    """One shard's worth of the mapping: checkpoint, filter, invoke, checkpoint again."""

    table_name: str
    batch_size: int = 100
    pattern: dict[str, Any] = field(default_factory=lambda: OUTCOME_FILTER_PATTERN)
    invocations: list[Invocation] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._streams = boto3.client("dynamodbstreams")
        self.stream_arn = boto3.client("dynamodb").describe_table(TableName=self.table_name)["Table"][
            "LatestStreamArn"
        ]
        shards = self._streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        self.shard_id = shards[0]["ShardId"]
        self.next_sequence: str | None = None  # None: the trim horizon

    def all_records(self) -> list[dict[str, Any]]:
        """Every record of the stream, from the trim horizon (what a test inspects)."""
        return self._read(None)

    def pending(self) -> list[dict[str, Any]]:
        return self._read(self.next_sequence)

    def _read(self, start: str | None) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = (
            {"ShardIteratorType": "TRIM_HORIZON"}
            if start is None
            else {"ShardIteratorType": "AT_SEQUENCE_NUMBER", "SequenceNumber": start}
        )
        iterator = self._streams.get_shard_iterator(
            StreamArn=self.stream_arn, ShardId=self.shard_id, **kwargs
        )["ShardIterator"]
        records: list[dict[str, Any]] = []
        while iterator:
            page = self._streams.get_records(ShardIterator=iterator)
            if not page["Records"]:
                break
            records.extend(lambda_record(record, self.stream_arn) for record in page["Records"])
            iterator = page.get("NextShardIterator")
        return records

    def invoke(self, function: Callable[[dict[str, Any]], dict[str, Any]]) -> Invocation | None:
        """One poll: the next batch (after filtering) to `function`; None when nothing is pending."""
        raw = self.pending()[: self.batch_size]
        if not raw:
            return None
        batch = [record for record in raw if matches(self.pattern, record)]
        past_batch = str(int(raw[-1]["dynamodb"]["SequenceNumber"]) + 1)
        if not batch:
            self.next_sequence = past_batch
            return Invocation([], None, None)
        try:
            response = function({"Records": batch})
        except BaseException as error:
            invocation = Invocation(batch, None, error)
        else:
            invocation = Invocation(batch, response, None)
            failures = [int(item["itemIdentifier"]) for item in response.get("batchItemFailures", [])]
            self.next_sequence = str(min(failures)) if failures else past_batch
        self.invocations.append(invocation)
        return invocation

    def drain(
        self, function: Callable[[dict[str, Any]], dict[str, Any]], *, max_invocations: int = 50
    ) -> None:
        """Invoke until nothing is pending (each failed invocation is retried, as the mapping does)."""
        for _ in range(max_invocations):
            if self.invoke(function) is None:
                return
        raise AssertionError(f"the stream still has records after {max_invocations} invocations")
