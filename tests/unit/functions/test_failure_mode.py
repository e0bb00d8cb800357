"""The failure_mode guardrails: expiry, maximum TTL, unknown values, injection disabled, the writer."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from functions.common.failure_mode import (
    FailureModeReader,
    Resolution,
    encode_failure_mode,
    resolve_failure_mode,
    write_failure_mode,
)
from functions.common.names import FAILURE_MODE_PARAMETER, FailureMode
from functions.common.parameter_provider import ParameterWithMetadataProvider

NOW = 1_800_000_000.0
MAX_TTL = 3600


def resolve(raw: str, *, age: float = 10, enabled: bool = True) -> Any:
    return resolve_failure_mode(
        raw, last_modified=NOW - age, now=NOW, max_ttl_seconds=MAX_TTL, enabled=enabled
    )


@pytest.mark.parametrize(
    ("raw", "age", "mode", "resolution"),
    [
        ("poison_payload", 10, FailureMode.POISON_PAYLOAD, Resolution.ACTIVE),
        (" slow_downstream\n", 10, FailureMode.SLOW_DOWNSTREAM, Resolution.ACTIVE),
        ("poison_payload", MAX_TTL - 1, FailureMode.POISON_PAYLOAD, Resolution.ACTIVE),
        # A plain value expires at LastModifiedDate + max TTL.
        ("poison_payload", MAX_TTL, FailureMode.NONE, Resolution.EXPIRED),
        ("none", 10, FailureMode.NONE, Resolution.NONE),
        ("Poison_Payload", 10, FailureMode.NONE, Resolution.UNKNOWN),
        ("", 10, FailureMode.NONE, Resolution.UNKNOWN),
        (
            json.dumps({"mode": "random_fail_p30", "expiresAt": int(NOW + 60)}),
            10,
            FailureMode.RANDOM_FAIL_P30,
            Resolution.ACTIVE,
        ),
        (
            json.dumps({"mode": "random_fail_p30", "expiresAt": int(NOW - 1)}),
            10,
            FailureMode.NONE,
            Resolution.EXPIRED,
        ),
        # expiresAt beyond the hard maximum is capped by it.
        (
            json.dumps({"mode": "random_fail_p30", "expiresAt": int(NOW + 10**6)}),
            MAX_TTL + 1,
            FailureMode.NONE,
            Resolution.EXPIRED,
        ),
        ('{"mode": "duplicate_submit"}', 10, FailureMode.DUPLICATE_SUBMIT, Resolution.ACTIVE),
        (f'{{"mode": "meltdown", "expiresAt": {NOW + 60:.0f}}}', 10, FailureMode.NONE, Resolution.UNKNOWN),
        ('{"mode": "poison_payload", "expiresAt": "soon"}', 10, FailureMode.NONE, Resolution.UNKNOWN),
        ('{"mode": "poison_payload", "expiresAt": true}', 10, FailureMode.NONE, Resolution.UNKNOWN),
        ('{"mode": "poison_payload"', 10, FailureMode.NONE, Resolution.UNKNOWN),
        ('["poison_payload"]', 10, FailureMode.NONE, Resolution.UNKNOWN),
        ('{"mode": null}', 10, FailureMode.NONE, Resolution.UNKNOWN),
    ],
)
def test_resolution(raw: str, age: float, mode: FailureMode, resolution: Resolution) -> None:
    resolved = resolve(raw, age=age)
    assert (resolved.mode, resolved.resolution) == (mode, resolution)


def test_disabled_injection_resolves_to_none() -> None:
    resolved = resolve("poison_payload", enabled=False)
    assert (resolved.mode, resolved.resolution) == (FailureMode.NONE, Resolution.DISABLED)


def test_encoded_value_round_trips_with_its_expiry() -> None:
    value = encode_failure_mode(FailureMode.SLOW_DOWNSTREAM, set_by="lab", now=NOW, ttl_seconds=120)
    assert json.loads(value) == {
        "mode": "slow_downstream",
        "setBy": "lab",
        "setAt": int(NOW),
        "expiresAt": int(NOW) + 120,
    }
    assert resolve(value).mode is FailureMode.SLOW_DOWNSTREAM
    later = resolve_failure_mode(value, last_modified=NOW, now=NOW + 121, max_ttl_seconds=MAX_TTL)
    assert later.resolution is Resolution.EXPIRED


@pytest.fixture
def ssm() -> Any:
    with mock_aws():
        yield boto3.client("ssm", region_name="us-east-1")


def test_reader_uses_the_parameter_last_modified_date(ssm: Any) -> None:
    ssm.put_parameter(Name=FAILURE_MODE_PARAMETER, Value="poison_payload", Type="String")
    provider = ParameterWithMetadataProvider(ssm)
    modified = ssm.get_parameter(Name=FAILURE_MODE_PARAMETER)["Parameter"]["LastModifiedDate"].timestamp()
    clock = [modified + 5]

    def reader_at() -> FailureModeReader:
        return FailureModeReader(
            provider,
            parameter_name=FAILURE_MODE_PARAMETER,
            enabled=True,
            cache_seconds=0,
            max_ttl_seconds=60,
            clock=lambda: clock[0],
        )

    assert reader_at().current().mode is FailureMode.POISON_PAYLOAD
    clock[0] = modified + 61
    assert reader_at().current().resolution is Resolution.EXPIRED


def test_reader_caches_for_max_age(ssm: Any) -> None:
    ssm.put_parameter(Name=FAILURE_MODE_PARAMETER, Value="poison_payload", Type="String")
    reader = FailureModeReader(
        ParameterWithMetadataProvider(ssm),
        parameter_name=FAILURE_MODE_PARAMETER,
        enabled=True,
        cache_seconds=300,
    )
    assert reader.current().mode is FailureMode.POISON_PAYLOAD
    ssm.put_parameter(Name=FAILURE_MODE_PARAMETER, Value="none", Type="String", Overwrite=True)
    assert reader.current().mode is FailureMode.POISON_PAYLOAD


def test_missing_parameter_is_none_not_a_crash(ssm: Any) -> None:
    reader = FailureModeReader(
        ParameterWithMetadataProvider(ssm), parameter_name="/does/not/exist", enabled=True, cache_seconds=0
    )
    resolved = reader.current()
    assert (resolved.mode, resolved.resolution) == (FailureMode.NONE, Resolution.UNREADABLE)


def test_disabled_reader_never_reads(ssm: Any) -> None:
    class Exploding(ParameterWithMetadataProvider):
        def _get(self, name: str, **options: Any) -> dict[str, Any]:
            raise AssertionError("must not read the parameter when injection is disabled")

    reader = FailureModeReader(Exploding(ssm), parameter_name=FAILURE_MODE_PARAMETER, enabled=False)
    assert reader.current().resolution is Resolution.DISABLED


def test_writer_stores_json_that_the_reader_honours(ssm: Any) -> None:
    ssm.put_parameter(Name=FAILURE_MODE_PARAMETER, Value="none", Type="String")
    write_failure_mode(
        ssm, FAILURE_MODE_PARAMETER, FailureMode.RANDOM_FAIL_P30, set_by="test", ttl_seconds=30
    )
    stored = json.loads(ssm.get_parameter(Name=FAILURE_MODE_PARAMETER)["Parameter"]["Value"])
    assert stored["mode"] == "random_fail_p30"
    assert time.time() + 25 <= stored["expiresAt"] <= time.time() + 31
    reader = FailureModeReader(
        ParameterWithMetadataProvider(ssm),
        parameter_name=FAILURE_MODE_PARAMETER,
        enabled=True,
        cache_seconds=0,
    )
    assert reader.current().mode is FailureMode.RANDOM_FAIL_P30


class ThrottlingSsm:
    """An SSM client that SSM is throttling: every GetParameter fails, each one counted."""

    def __init__(self) -> None:
        self.reads = 0

    def get_parameter(self, **kwargs: Any) -> Any:
        self.reads += 1
        raise ClientError(
            {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "GetParameter"
        )


def test_a_failed_read_is_cached_too_one_read_per_cache_period() -> None:
    ssm = ThrottlingSsm()
    clock = [NOW]
    reader = FailureModeReader(
        ParameterWithMetadataProvider(ssm),
        parameter_name=FAILURE_MODE_PARAMETER,
        enabled=True,
        cache_seconds=5,
        clock=lambda: clock[0],
    )

    for tick in range(50):  # 50 records (or requests) within one cache period
        clock[0] = NOW + tick * 0.09
        resolved = reader.current()
        assert (resolved.mode, resolved.resolution) == (FailureMode.NONE, Resolution.UNREADABLE)
    assert ssm.reads == 1

    clock[0] = NOW + 5
    reader.current()
    assert ssm.reads == 2


def test_a_readable_parameter_after_a_failure_is_read_again_once_the_period_ends(ssm: Any) -> None:
    clock = [time.time()]
    reader = FailureModeReader(
        ParameterWithMetadataProvider(ssm),
        parameter_name=FAILURE_MODE_PARAMETER,
        enabled=True,
        cache_seconds=5,
        clock=lambda: clock[0],
    )
    assert reader.current().resolution is Resolution.UNREADABLE  # not created yet
    ssm.put_parameter(Name=FAILURE_MODE_PARAMETER, Value="poison_payload", Type="String")
    assert reader.current().resolution is Resolution.UNREADABLE  # still within the period
    clock[0] += 5
    assert reader.current().mode is FailureMode.POISON_PAYLOAD
