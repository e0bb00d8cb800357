"""What drills observe besides the stage client: alarm notifications as a subscriber gets them, and
the duplicate deliveries the platform made."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import boto3
from moto import mock_aws

from lab.gamedays.observe import (
    UNRECORDED_DUPLICATE_SHARE,
    DuplicateDetections,
    PlatformDuplicates,
    alarm_notification,
    matching_notification,
    notification_time,
)
from lab.gamedays.runner import DrillContext
from lab.localcloud.engine_patches.delivery_stats import SQS_RECEIVE, DuplicateRecord

ALARM = {
    "AlarmName": "ingestion-dev-dlq-depth",
    "NewStateValue": "ALARM",
    "OldStateValue": "OK",
    "StateChangeTime": "2019-10-10T15:30:00.000+0000",
}


def test_an_alarm_notification_is_read_raw_or_from_its_sns_envelope() -> None:
    raw = json.dumps(ALARM)
    envelope = json.dumps({"Type": "Notification", "Message": raw})
    assert alarm_notification(raw) == ALARM
    assert alarm_notification(envelope) == ALARM
    assert alarm_notification(json.dumps({"Type": "Notification", "Message": "plain text"})) is None
    assert alarm_notification(json.dumps({"source": "ingestion.lab"})) is None
    assert alarm_notification("not json") is None


def test_cloudwatchs_timestamp_format_is_understood() -> None:
    assert notification_time(ALARM).isoformat() == "2019-10-10T15:30:00+00:00"


def _context(local_cloud: dict[str, Any]) -> DrillContext:
    return cast(DrillContext, SimpleNamespace(target=SimpleNamespace(local_cloud=local_cloud)))


def test_the_local_clouds_record_bounds_the_duplicates_a_drill_tolerates(tmp_path: Path) -> None:
    path = tmp_path / "duplicates.json"
    record = DuplicateRecord(0.05, path)
    record.add(SQS_RECEIVE, "arn:aws:sqs:us-east-1:000000000000:ingestion-local-events")
    platform = PlatformDuplicates(_context({"duplicatesFile": str(path)}), "ingestion-local-events")
    record.add(SQS_RECEIVE, "arn:aws:sqs:us-east-1:000000000000:ingestion-local-events")
    record.add(SQS_RECEIVE, "arn:aws:sqs:us-east-1:000000000000:ingestion-local-events-dlq")

    assert platform.recorded
    assert platform.made() == 1, "only this queue's duplicates since the drill began"
    assert platform.allowance(events=100) == 1


def test_without_a_record_a_share_of_the_events_is_tolerated() -> None:
    platform = PlatformDuplicates(_context({}), "ingestion-dev-events")
    assert not platform.recorded
    assert platform.made() is None
    assert platform.allowance(events=30) == round(UNRECORDED_DUPLICATE_SHARE * 30)


def _note(alarm: str, old: str, new: str, at: str) -> dict[str, Any]:
    return {"AlarmName": alarm, "OldStateValue": old, "NewStateValue": new, "StateChangeTime": at}


def test_an_ok_notification_counts_only_as_the_latest_and_after_alarm() -> None:
    first_ok = _note("dlq", "INSUFFICIENT_DATA", "OK", "2026-11-29T10:00:00.000+0000")
    alarm = _note("dlq", "OK", "ALARM", "2026-11-29T10:01:00.000+0000")
    recovered = _note("dlq", "ALARM", "OK", "2026-11-29T10:03:00.000+0000")
    # A new alarm's first OK proves no recovery; nor does an OK followed by another ALARM.
    assert matching_notification([first_ok], "dlq", "OK") is None
    assert matching_notification([first_ok, alarm], "dlq", "OK") is None
    flap_again = _note("dlq", "OK", "ALARM", "2026-11-29T10:04:00.000+0000")
    assert matching_notification([first_ok, alarm, recovered, flap_again], "dlq", "OK") is None
    assert matching_notification([first_ok, alarm, recovered], "dlq", "OK") == recovered
    assert matching_notification([first_ok, alarm, recovered], "dlq", "ALARM") == alarm
    assert matching_notification([first_ok, alarm, recovered], "other", "ALARM") is None


@mock_aws
def test_duplicate_detections_are_this_drills_keys_from_the_worker_log() -> None:
    logs = boto3.client("logs", region_name="us-east-1")
    group, stream = "/aws/lambda/ingestion-dev-worker", "2026/11/29/[$LATEST]abc"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    now_ms = int(time.time() * 1000)

    def line(key: str, message_id: str, *, duplicate: bool = True) -> dict[str, Any]:
        body = {"message": "duplicate of a processed key", "idempotencyKey": key, "messageId": message_id}
        return {"timestamp": now_ms, "message": json.dumps(body | ({"duplicate": True} if duplicate else {}))}

    events = [
        line("mine-1", "m1"),
        line("mine-1", "m1"),  # the same message delivered again
        line("mine-2", "m2", duplicate=False),  # not a duplicate line
        line("theirs", "t1"),  # an earlier run's key
        {"timestamp": now_ms, "message": "REPORT RequestId: 1 Duration: 2 ms"},
    ]
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)
    target = SimpleNamespace(
        client=lambda service: logs, output=lambda name: "ingestion-dev-worker", local_cloud={}
    )
    ctx = cast(
        DrillContext, SimpleNamespace(target=target, started_wall=time.time() - 5, remaining=lambda: 30.0)
    )

    detections = DuplicateDetections(ctx)
    assert detections.by_key({"mine-1", "mine-2"}) == {"mine-1": ["m1", "m1"]}
    # Every line counts: the same message flagged twice was delivered twice.
    assert detections.settled_lines({"mine-1", "mine-2"}, quiet_s=0.2) == 2
