"""The lab's target resolver: local outputs file, environment variables, deployed stage stacks."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from functions.common.names import Output
from stage_client.target import TargetError, load_env_target, load_local_target, load_stage_target


def _stack(name: str, **outputs: str) -> dict[str, object]:
    return {
        "StackName": name,
        "CreationTime": "2026-11-28T00:00:00Z",
        "StackStatus": "CREATE_COMPLETE",
        "Outputs": [{"OutputKey": key, "OutputValue": value} for key, value in outputs.items()],
    }


def test_stage_target_merges_the_outputs_of_the_envs_stacks_only() -> None:
    cfn = boto3.client("cloudformation", region_name="eu-west-1")
    stubber = Stubber(cfn)
    stubber.add_response(
        "describe_stacks",
        {
            "Stacks": [
                _stack("ingestion-dev-api", ApiUrl="https://dev.example/"),
                _stack("ingestion-dev-queues", QueueUrl="https://sqs/dev-events"),
                # Another environment whose name starts like this one must not leak in.
                _stack("ingestion-devx-queues", QueueUrl="https://sqs/devx-events"),
                _stack("ingestion-prod-api", ApiUrl="https://prod.example/"),
            ]
        },
    )
    with stubber:
        target = load_stage_target("dev", "eu-west-1", cfn=cfn)
    assert target.api_url == "https://dev.example"
    assert target.output(Output.QUEUE_URL) == "https://sqs/dev-events"
    assert target.endpoint_url is None
    assert not target.is_local


def test_stage_target_without_stacks_names_the_prefix() -> None:
    cfn = boto3.client("cloudformation", region_name="eu-west-1")
    stubber = Stubber(cfn)
    stubber.add_response("describe_stacks", {"Stacks": [_stack("other-stack", ApiUrl="https://x")]})
    with stubber, pytest.raises(TargetError, match="ingestion-dev-"):
        load_stage_target("dev", "eu-west-1", cfn=cfn)


def test_env_target_reads_outputs_named_like_the_stage_outputs() -> None:
    environ = {"ApiUrl": "https://api.example/", "TableName": "state", "AWS_REGION": "eu-west-2"}
    target = load_env_target(environ)
    assert target.api_url == "https://api.example"
    assert target.output(Output.TABLE_NAME) == "state"
    assert target.region == "eu-west-2"
    with pytest.raises(TargetError, match=Output.DLQ_URL.value):
        target.output(Output.DLQ_URL)


def test_env_target_requires_the_api_url() -> None:
    with pytest.raises(TargetError, match=Output.API_URL.value):
        load_env_target({"TableName": "state"})


def test_api_headers_carry_the_api_key_and_a_bearer_token(monkeypatch: pytest.MonkeyPatch) -> None:
    target = load_env_target({"ApiUrl": "https://api.example"})
    monkeypatch.delenv("LAB_BEARER_TOKEN", raising=False)
    assert target.api_headers() == {}
    monkeypatch.setenv("LAB_BEARER_TOKEN", "eyJ.token")
    assert target.api_headers() == {"authorization": "Bearer eyJ.token"}


def test_local_target_reads_the_outputs_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAB_BEARER_TOKEN", raising=False)
    outputs = tmp_path / "outputs.json"
    with pytest.raises(TargetError, match="make lab"):
        load_local_target(outputs)
    outputs.write_text(
        json.dumps(
            {
                "endpointUrl": "http://127.0.0.1:4566",
                "region": "us-east-1",
                "apiUrl": "http://127.0.0.1:4566/_aws/execute-api/abc/",
                "outputs": {Output.QUEUE_URL.value: "http://127.0.0.1:4566/000000000000/q"},
                "apiKey": "secret-key",
            }
        )
    )
    target = load_local_target(outputs)
    assert target.is_local
    assert target.api_url == "http://127.0.0.1:4566/_aws/execute-api/abc"
    assert target.api_headers() == {"x-api-key": "secret-key"}
    assert target.output(Output.QUEUE_URL).endswith("/q")
