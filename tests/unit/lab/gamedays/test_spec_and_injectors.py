"""Drill specs (keyword-only, DLQ trips as a type) and what each injector says of itself."""

from __future__ import annotations

import dataclasses

import pytest

from lab.gamedays.drills import DRILLS
from lab.gamedays.injectors import INJECTORS, FisInjector, InjectorError, SsmInjector, injector_type
from lab.gamedays.spec import AlarmWindow, DrillSpec, StageTiming, Trips, UntilQuarantined
from stage_client.target import Target


def _noop(_ctx: object) -> list[str]:
    return []


def test_a_drill_spec_takes_keywords_only() -> None:
    with pytest.raises(TypeError):
        DrillSpec(_noop, "positional", 1, 10)  # type: ignore[call-arg]
    spec = DrillSpec(run=_noop, summary="s", default_events=1, default_timeout_s=10)
    assert (spec.fis, spec.dlq_trips, spec.waits_for_alarms) == (False, Trips(0), False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.summary = "changed"  # type: ignore[misc]


def test_dlq_trips_count_fixed_or_through_the_redrive_limit() -> None:
    assert Trips(2).count(max_redrives=7) == 2
    assert UntilQuarantined().count(max_redrives=3) == 4
    timing = StageTiming(dlq_trip_s=100, alarm_s=90, ok_s=60)
    spec = DrillSpec(
        run=_noop, summary="s", default_events=1, default_timeout_s=10, dlq_trips=UntilQuarantined()
    )
    assert spec.budget_s(timing, max_redrives=2) == 3 * 100 + 120
    alarms = dataclasses.replace(spec, dlq_trips=Trips(1), waits_for_alarms=True)
    assert alarms.budget_s(timing, max_redrives=2) == 100 + 90 + 60 + 120
    assert dataclasses.replace(spec, default_timeout_s=9999).budget_s(timing, max_redrives=2) == 9999


def test_stage_timing_counts_the_receives_and_the_age_a_dlq_message_must_reach() -> None:
    depth = AlarmWindow.of(
        "ApproximateNumberOfMessagesVisible", period_s=60, evaluation_periods=2, threshold=0
    )
    age = AlarmWindow.of("ApproximateAgeOfOldestMessage", period_s=60, evaluation_periods=1, threshold=300)
    timing = StageTiming.of(visibility_s=182, max_receive_count=3, dlq_alarms=[depth, age])
    # Four visibility timeouts to reach the DLQ; the age alarm fires 300 s after the move + 1 period,
    # the depth alarm after 2 periods; both clear after their periods.
    assert timing == StageTiming(dlq_trip_s=4 * 182, alarm_s=360, ok_s=120)
    assert StageTiming.of(visibility_s=30, max_receive_count=5, dlq_alarms=[]) == StageTiming(180, 300, 300)


def test_each_injector_picks_the_evidence_of_where_its_fault_acts() -> None:
    assert SsmInjector().evidence(in_handler="records", around_handler="metrics") == "records"
    assert FisInjector().evidence(in_handler="records", around_handler="metrics") == "metrics"


def test_what_each_injector_drives() -> None:
    assert all(SsmInjector.can_drive(spec) for spec in DRILLS.values())
    assert {name for name, spec in DRILLS.items() if FisInjector.can_drive(spec)} == {
        "slow-downstream",
        "random-fail-p30",
    }
    assert set(INJECTORS) == {"ssm", "fis"}
    assert injector_type("fis") is FisInjector


def test_an_unknown_injector_names_the_known_ones() -> None:
    with pytest.raises(InjectorError, match="use ssm or fis"):
        injector_type("chaos-monkey")


def test_fis_is_refused_for_the_local_cloud_when_made() -> None:
    local = Target(
        name="local", outputs={}, api_url="http://127.0.0.1:9", region="us-east-1", endpoint_url="x"
    )
    with pytest.raises(InjectorError, match="AWS-only"):
        FisInjector.for_target(local)
    assert isinstance(SsmInjector.for_target(local), SsmInjector)
