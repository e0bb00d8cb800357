"""`lab gameday --injector fis`: template discovery by tag + target, start, and stop on restore."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from functions.common.names import FailureMode, FisExperiment, Output
from lab.gamedays.injectors import FisInjector, InjectorError, find_template
from lab.gamedays.runner import DrillContext
from stage_client.failure_mode import StageGuardrails
from stage_client.target import Target

WORKER = "ingestion-dev-worker"
WORKER_ARN = f"arn:aws:lambda:us-east-1:111111111111:function:{WORKER}"


def template(template_id: str, arn: str) -> dict[str, Any]:
    return {
        "experimentTemplate": {
            "id": template_id,
            "targets": {
                "Worker": {
                    "resourceType": "aws:lambda:function",
                    "resourceArns": [arn],
                    "selectionMode": "ALL",
                }
            },
        }
    }


@pytest.fixture
def fis_target() -> tuple[Target, Stubber]:
    target = Target(
        name="stage:IngestionDev",
        outputs={Output.WORKER_FUNCTION_NAME.value: WORKER},
        api_url="https://api.example.com",
        region="us-east-1",
    )
    client = boto3.client("fis", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    target._clients["fis"] = client
    return target, Stubber(client)


def test_find_template_matches_the_slug_tag_and_this_stages_worker(
    fis_target: tuple[Target, Stubber],
) -> None:
    target, stubber = fis_target
    stubber.add_response(
        "list_experiment_templates",
        {
            "experimentTemplates": [
                {"id": "EXTother", "tags": {"Name": "ingestion-prod-worker-delay-beyond-timeout"}},
                {"id": "EXTerror", "tags": {"Name": "ingestion-dev-worker-invocation-error-30"}},
            ],
            "nextToken": "page2",
        },
        {},
    )
    stubber.add_response(
        "list_experiment_templates",
        {
            "experimentTemplates": [
                {"id": "EXTmine", "tags": {"Name": "ingestion-dev-worker-delay-beyond-timeout"}}
            ]
        },
        {"nextToken": "page2"},
    )
    stubber.add_response(
        "get_experiment_template",
        template("EXTother", "arn:aws:lambda:us-east-1:222222222222:function:ingestion-prod-worker"),
        {"id": "EXTother"},
    )
    stubber.add_response("get_experiment_template", template("EXTmine", WORKER_ARN), {"id": "EXTmine"})
    with stubber:
        assert find_template(target, FisExperiment.SLOW_DOWNSTREAM) == "EXTmine"
    stubber.assert_no_pending_responses()


def test_find_template_says_what_is_missing(fis_target: tuple[Target, Stubber]) -> None:
    target, stubber = fis_target
    stubber.add_response("list_experiment_templates", {"experimentTemplates": []}, {})
    with stubber, pytest.raises(InjectorError, match="fisEnabled"):
        find_template(target, FisExperiment.RANDOM_FAIL_P30)


def test_find_template_refuses_the_local_cloud() -> None:
    local = Target(
        name="local", outputs={}, api_url="http://127.0.0.1:1", region="us-east-1", endpoint_url="http://x"
    )
    with pytest.raises(InjectorError, match="AWS-only"):
        find_template(local, FisExperiment.SLOW_DOWNSTREAM)


def test_fis_injector_starts_the_experiment_and_stops_it_on_restore(
    fis_target: tuple[Target, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    target, stubber = fis_target
    monkeypatch.setattr("lab.gamedays.injectors.find_template", lambda _target, _experiment: "EXTmine")
    resolutions = iter(["random_fail_p30", "none"])

    class State:
        effective = "none"

    def fake_read(_target: Target, **_: Any) -> State:
        state = State()
        state.effective = next(resolutions)
        return state

    resets: list[str] = []
    monkeypatch.setattr("lab.gamedays.injectors.read_failure_mode", fake_read)
    monkeypatch.setattr("lab.gamedays.injectors.reset_failure_mode", lambda _t, set_by: resets.append(set_by))
    experiment = {"id": "EXP1", "state": {"status": "initiating"}}
    stubber.add_response(
        "start_experiment",
        {"experiment": experiment},
        {"clientToken": ANY, "experimentTemplateId": "EXTmine", "tags": {"Drill": "random-fail-p30"}},
    )
    stubber.add_response(
        "get_experiment", {"experiment": {"id": "EXP1", "state": {"status": "initiating"}}}, {"id": "EXP1"}
    )
    stubber.add_response(
        "get_experiment", {"experiment": {"id": "EXP1", "state": {"status": "running"}}}, {"id": "EXP1"}
    )
    stubber.add_response(
        "get_experiment", {"experiment": {"id": "EXP1", "state": {"status": "running"}}}, {"id": "EXP1"}
    )
    stubber.add_response("stop_experiment", {"experiment": {"id": "EXP1"}}, {"id": "EXP1"})
    ctx = DrillContext(
        target=target,
        name="random-fail-p30",
        events=1,
        timeout_s=30,
        injector=FisInjector(),
        guardrails=StageGuardrails(),
        printer=lambda _: None,
    )
    injector = FisInjector()
    with stubber:
        started = injector.inject(ctx, FailureMode.RANDOM_FAIL_P30, ttl_seconds=60)
        assert started == {"experimentId": "EXP1", "templateId": "EXTmine", "state": "running"}
        restored = injector.restore(ctx)
    assert restored == {
        "via": "fis",
        "experimentId": "EXP1",
        "state": "stopping",
        "failure_mode": "reset to none",
    }
    assert resets == ["gameday:random-fail-p30"]
    stubber.assert_no_pending_responses()


def test_fis_injector_refuses_modes_without_a_template(fis_target: tuple[Target, Stubber]) -> None:
    target, _ = fis_target
    ctx = DrillContext(
        target=target, name="x", events=1, timeout_s=5, injector=FisInjector(), guardrails=StageGuardrails()
    )
    with pytest.raises(InjectorError, match="no FIS experiment drives poison_payload"):
        FisInjector().inject(ctx, FailureMode.POISON_PAYLOAD, ttl_seconds=60)
