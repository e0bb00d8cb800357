"""The at-least-once mode's settings and record, as the engine writes it and the drills read it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.localcloud.engine_patches.delivery_stats import (
    RULE_DELIVERY,
    SNS_DELIVERY,
    SQS_RECEIVE,
    DuplicateRecord,
    parse_share,
    read_counts,
)


@pytest.mark.parametrize(("raw", "share"), [(None, 0.0), ("", 0.0), ("0", 0.0), ("0.05", 0.05), ("1", 1.0)])
def test_a_share_is_read_within_zero_and_one(raw: str | None, share: float) -> None:
    assert parse_share(raw) == share


@pytest.mark.parametrize("raw", ["-0.1", "1.5", "five percent"])
def test_a_share_out_of_range_is_refused_not_read_as_off(raw: str) -> None:
    with pytest.raises(ValueError, match=r"within 0\.\.1|could not convert"):
        parse_share(raw)


def test_the_record_is_rewritten_on_every_duplicate_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "duplicates.json"
    record = DuplicateRecord(0.05, path)
    queue = "arn:aws:sqs:us-east-1:000000000000:ingestion-local-events"
    record.add(SQS_RECEIVE, queue)
    before = read_counts(path)
    record.add(SQS_RECEIVE, queue)
    record.add(RULE_DELIVERY, "arn:aws:sns:us-east-1:000000000000:ingestion-local-success")

    now = read_counts(path)

    assert json.loads(path.read_text())["share"] == 0.05
    assert (now.of(SQS_RECEIVE), now.of(RULE_DELIVERY), now.of(SNS_DELIVERY)) == (2, 1, 0)
    assert now.of(SQS_RECEIVE, "ingestion-local-events") == 2, "a queue is found by its name too"
    assert now.of(SQS_RECEIVE, "ingestion-local-events-dlq") == 0
    assert now.since(before).of(SQS_RECEIVE, queue) == 1
    assert list(tmp_path.iterdir()) == [path], "no partial file is left behind"


def test_no_record_yet_reads_as_no_duplicate(tmp_path: Path) -> None:
    counts = read_counts(tmp_path / "never-written.json")
    assert (counts.share, counts.of(SQS_RECEIVE)) == (0.0, 0)
