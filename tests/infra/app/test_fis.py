"""FIS experiment templates (dev only): actions, stop conditions, the least-privilege role, worker wiring."""

from __future__ import annotations

from typing import Any

from app.components.alarms import FIS_STOP_ALARMS
from app.constructs.fis_experiments import (
    ACTION_ADD_DELAY,
    ACTION_ERROR,
    FIS_ENV_CONFIGURATION_LOCATION,
    FIS_ENV_EXEC_WRAPPER,
    FIS_EXEC_WRAPPER,
    extension_layer_parameter,
)
from functions.common import names
from tests.infra.synth import SynthesizedStage


def _templates(stage: SynthesizedStage) -> dict[str, dict[str, Any]]:
    return {
        t["Properties"]["Actions"]["inject"]["ActionId"]: t["Properties"]
        for t in stage.resources("observability", "AWS::FIS::ExperimentTemplate").values()
    }


def test_templates_are_tagged_with_the_names_the_lab_looks_up(dev: SynthesizedStage) -> None:
    tags = {t["Tags"][names.FIS_TEMPLATE_NAME_TAG] for t in _templates(dev).values()}
    assert tags == {f"{dev.config.prefix}-{experiment.value}" for experiment in names.FisExperiment}


def test_fis_templates_exist_in_dev_only(
    local: SynthesizedStage, dev: SynthesizedStage, prod: SynthesizedStage
) -> None:
    assert set(_templates(dev)) == {ACTION_ADD_DELAY, ACTION_ERROR}
    assert _templates(local) == {}
    assert _templates(prod) == {}


def test_delay_goes_beyond_the_worker_timeout(dev: SynthesizedStage) -> None:
    params = _templates(dev)[ACTION_ADD_DELAY]["Actions"]["inject"]["Parameters"]
    assert int(params["startupDelayMilliseconds"]) > dev.config.worker_timeout_seconds * 1000
    assert int(params["startupDelayMilliseconds"]) <= 900_000
    assert params["invocationPercentage"] == "100"
    assert params["duration"] == f"PT{dev.config.fis_experiment_duration_minutes}M"


def test_invocation_error_hits_thirty_percent(dev: SynthesizedStage) -> None:
    params = _templates(dev)[ACTION_ERROR]["Actions"]["inject"]["Parameters"]
    assert params["invocationPercentage"] == "30"
    assert params["preventExecution"] == "true"


def worker_arn(stage: SynthesizedStage) -> str:
    """The worker by the ARN its deterministic name gives (the templates are optional: no export)."""
    worker = stage.stage.compute.worker
    assert (
        stage.raw["functions"]["Resources"][stage.logical_id(worker.function)]["Properties"]["FunctionName"]
        == worker.function_name
    )
    config = stage.config
    return f"arn:AWS::Partition:lambda:{config.region}:{config.account}:function:{worker.function_name}"


def test_templates_target_only_the_worker_and_stop_on_the_stage_alarms(dev: SynthesizedStage) -> None:
    observability = dev.stage.observability
    expected_stops = {f"{dev.logical_id(observability.alarms[slug])}.Arn" for slug in FIS_STOP_ALARMS}
    for template in _templates(dev).values():
        (target,) = template["Targets"].values()
        assert target["ResourceType"] == "aws:lambda:function"
        assert target["SelectionMode"] == "ALL"
        assert [dev.ref(arn) for arn in target["ResourceArns"]] == [worker_arn(dev)]
        assert template["Actions"]["inject"]["Targets"] == {"Functions": next(iter(template["Targets"]))}
        stops = template["StopConditions"]
        assert {s["Source"] for s in stops} == {"aws:cloudwatch:alarm"}
        assert {dev.ref(s["Value"]) for s in stops} == expected_stops
        assert dev.ref(template["RoleArn"]) == dev.arn(observability.fis.role)  # type: ignore[union-attr]


def test_fis_role_is_trusted_by_fis_in_this_account_and_least_privileged(dev: SynthesizedStage) -> None:
    role = dev.stage.observability.fis.role  # type: ignore[union-attr]
    props = dev.raw["observability"]["Resources"][dev.logical_id(role)]["Properties"]
    # Its trust (this account's experiments only) is one of the audited deliveries:
    # tests/infra/app/test_deliveries.py.
    (trust,) = props["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "fis.amazonaws.com"}
    bucket = f"{dev.config.prefix}-fis-config-{dev.config.account}-{dev.config.region}"
    assert dev.role_grants(role) == {
        (frozenset({"lambda:GetFunction"}), frozenset({worker_arn(dev)})),
        (frozenset({"s3:PutObject", "s3:DeleteObject"}), frozenset({f"arn:aws:s3:::{bucket}/FisConfigs/*"})),
    }


def test_worker_carries_the_fis_extension_in_dev_only(
    local: SynthesizedStage, dev: SynthesizedStage, prod: SynthesizedStage
) -> None:
    def worker(stage: SynthesizedStage) -> dict[str, Any]:
        return stage.raw["functions"]["Resources"][stage.logical_id(stage.stage.compute.worker.function)][
            "Properties"
        ]

    props = worker(dev)
    env = props["Environment"]["Variables"]
    assert env[FIS_ENV_EXEC_WRAPPER] == FIS_EXEC_WRAPPER
    bucket = f"{dev.config.prefix}-fis-config-{dev.config.account}-{dev.config.region}"
    assert env[FIS_ENV_CONFIGURATION_LOCATION] == f"arn:aws:s3:::{bucket}/FisConfigs/"
    (parameter_id,) = (
        logical_id
        for logical_id, parameter in dev.raw["functions"]["Parameters"].items()
        if parameter.get("Default") == extension_layer_parameter(dev.config.architecture)
    )
    parameter = dev.raw["functions"]["Parameters"][parameter_id]
    assert parameter["Type"] == "AWS::SSM::Parameter::Value<String>"
    assert {"Ref": parameter_id} in props["Layers"]
    dev.templates["functions"].has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketName": bucket,
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
        },
    )
    for other in (local, prod):
        assert FIS_ENV_EXEC_WRAPPER not in worker(other)["Environment"]["Variables"]
        assert len(worker(other)["Layers"]) == 1
        assert not other.resources("functions", "AWS::S3::Bucket")
