"""The synth step's pre-flight: each stage's public layer parameters, looked up in the stage's region,
and a failure that names the release and the region (SSM answered by botocore's Stubber)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from app import StageConfig, load_stage_config
from app.constructs.lambda_fn import powertools_package_version
from pipeline.preflight import file_context, regional_parameters, run
from tests import REPO_ROOT

CONTEXT: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


def stage(env_name: str, **overrides: Any) -> StageConfig:
    return load_stage_config(CONTEXT, env_name, **overrides)


class FakeSsm:
    """One stubbed SSM client per region; `published` maps a region to the parameters that exist there."""

    def __init__(self, published: dict[str, set[str]], *, denied: bool = False) -> None:
        self.published, self.denied = published, denied
        self.asked: list[tuple[str, str]] = []

    def client_for(self, parameters: list[Any]) -> Callable[[str], Any]:
        clients: dict[str, Any] = {}
        stubbers: dict[str, Stubber] = {}
        for item in parameters:
            if item.region not in clients:
                clients[item.region] = boto3.client("ssm", region_name=item.region)
                stubbers[item.region] = Stubber(clients[item.region])
            stubber = stubbers[item.region]
            request = {"Name": item.parameter.name}
            self.asked.append((item.region, item.parameter.name))
            if self.denied:
                stubber.add_client_error(
                    "get_parameter", "AccessDeniedException", "not allowed", 400, request
                )
            elif item.parameter.name in self.published.get(item.region, set()):
                value = f"arn:aws:lambda:{item.region}:017000801446:layer:x:1"
                stubber.add_response(
                    "get_parameter", {"Parameter": {"Name": item.parameter.name, "Value": value}}, request
                )
            else:
                stubber.add_client_error("get_parameter", "ParameterNotFound", "", 400, request)
        for stubber in stubbers.values():
            stubber.activate()
        return lambda region: clients[region]


def test_each_stage_checks_its_own_parameters_in_its_own_region() -> None:
    dev, prod = stage("dev", region="eu-west-1"), stage("prod", region="us-east-2")
    parameters = regional_parameters([dev, prod])
    found = {(item.region, item.parameter.name) for item in parameters}
    version = powertools_package_version()
    assert found == {
        ("eu-west-1", f"/aws/service/powertools/python/arm64/python3.13/{version}"),
        ("eu-west-1", "/aws/service/fis/lambda-extension/AWS-FIS-extension-arm64/1.x.x"),  # dev runs FIS
        ("us-east-2", f"/aws/service/powertools/python/arm64/python3.13/{version}"),
    }
    assert {item.arn for item in parameters if item.region == "us-east-2"} == {
        f"arn:aws:ssm:us-east-2::parameter/aws/service/powertools/python/arm64/python3.13/{version}"
    }
    # The local cloud resolves no public parameter.
    assert regional_parameters([stage("local")]) == []


def test_passes_when_every_parameter_exists(capsys: pytest.CaptureFixture[str]) -> None:
    parameters = regional_parameters([stage("dev"), stage("prod")])
    ssm = FakeSsm({"us-east-1": {item.parameter.name for item in parameters}})
    assert run(parameters, ssm.client_for(parameters)) == 0
    out = capsys.readouterr().out
    assert out.count(" exists") == len(parameters) == len(ssm.asked)


def test_a_release_missing_in_a_region_fails_naming_the_version_and_the_region(
    capsys: pytest.CaptureFixture[str],
) -> None:
    dev, prod = stage("dev"), stage("prod", region="ap-southeast-7")
    parameters = regional_parameters([dev, prod])
    ssm = FakeSsm({"us-east-1": {item.parameter.name for item in parameters}})
    assert run(parameters, ssm.client_for(parameters)) == 1
    (failure,) = [line for line in capsys.readouterr().err.splitlines() if "FAILED" in line]
    version = powertools_package_version()
    assert failure.startswith("preflight: FAILED ingestion-prod (ap-southeast-7): ")
    assert f"Powertools for AWS Lambda (Python) {version} layer" in failure
    assert "is not published in ap-southeast-7" in failure


def test_an_unreadable_parameter_fails_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    parameters = regional_parameters([stage("prod")])
    ssm = FakeSsm({}, denied=True)
    assert run(parameters, ssm.client_for(parameters)) == 1
    assert "AccessDeniedException" in capsys.readouterr().err


def test_the_context_is_read_as_the_cdk_cli_merges_it(tmp_path: Path) -> None:
    """cdk.context.json adds keys (the synth step writes the context parameter there); cdk.json's own
    context wins where both set one, as in the CDK CLI."""
    (tmp_path / "cdk.json").write_text(json.dumps({"context": {"pipeline": {"branch": "main"}}}))
    assert file_context(tmp_path) == {"pipeline": {"branch": "main"}}
    (tmp_path / "cdk.context.json").write_text(
        json.dumps({"prodAccount": "123456789012", "pipeline": {"branch": "other"}})
    )
    assert file_context(tmp_path) == {"prodAccount": "123456789012", "pipeline": {"branch": "main"}}
