"""The local cloud's pure helpers: engine requirements, API URL, assembly reading, deploy skipping."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab.harness.cdk import CONTEXT_KEY as HARNESS_CONTEXT_KEY
from lab.harness.cdk import DeployError, context_with, fingerprint, source_fingerprint, stage_stack_names
from lab.harness.deploy import local_api_url
from lab.harness.paths import LOCAL_ENV_NAME, RUNTIME_REQUIREMENTS
from lab.localcloud.engine import engine_requirements, process_runs
from stage_client.target import REPO_ROOT


def _pins(lines: list[str]) -> dict[str, str]:
    return {line.split("==")[0].lower(): line.split("==")[1] for line in lines}


def test_engine_gets_the_runtime_packages_but_its_own_boto3():
    engine = _pins(engine_requirements(RUNTIME_REQUIREMENTS))
    runtime = _pins(
        [
            line
            for line in RUNTIME_REQUIREMENTS.read_text().splitlines()
            if "==" in line and not line.startswith("#")
        ]
    )

    assert engine["aws-lambda-powertools"] == runtime["aws-lambda-powertools"]
    assert engine["aws-xray-sdk"] == runtime["aws-xray-sdk"]
    assert engine["ministack"] == "1.5.33"
    # ministack pins botocore exactly; boto3 must be the release made for that botocore.
    assert engine["boto3"] == engine["botocore"]
    assert len(engine_requirements(RUNTIME_REQUIREMENTS)) == len(engine), "a package pinned twice"


def test_api_url_uses_the_engine_path_form_from_the_api_id():
    outputs = {"ApiId": "abc123", "ApiUrl": "http://abc123.execute-api.localhost:4566/"}
    assert local_api_url("http://127.0.0.1:4566", outputs) == "http://127.0.0.1:4566/_aws/execute-api/abc123"


def test_api_url_falls_back_to_the_host_of_the_api_url_output():
    outputs = {"ApiUrl": "http://xyz9.execute-api.localhost:4566/"}
    assert local_api_url("http://127.0.0.1:1", outputs) == "http://127.0.0.1:1/_aws/execute-api/xyz9"


def test_api_url_without_an_api_output_is_an_error():
    with pytest.raises(DeployError, match="ApiId"):
        local_api_url("http://127.0.0.1:1", {"QueueUrl": "q"})


def _assembly(tmp_path: Path, templates: dict[str, str]) -> Path:
    artifacts = {
        "IngestionLocalQueues": {
            "type": "aws:cloudformation:stack",
            "properties": {"stackName": "ingestion-local-queues"},
        },
        "IngestionLocalApi": {"type": "aws:cloudformation:stack", "properties": {}},
        "Tree": {"type": "cdk:tree"},
    }
    (tmp_path / "manifest.json").write_text(json.dumps({"artifacts": artifacts}))
    for name, body in templates.items():
        (tmp_path / name).write_text(body)
    return tmp_path


def test_stack_names_come_from_the_manifest_in_order(tmp_path):
    assembly = _assembly(tmp_path, {})
    assert stage_stack_names(assembly) == ["ingestion-local-queues", "IngestionLocalApi"]


def test_fingerprint_changes_with_any_template_and_only_then(tmp_path):
    assembly = _assembly(tmp_path, {"a.template.json": "{}", "b.template.json": '{"x": 1}', "tree.json": "1"})
    first = fingerprint(assembly)
    (tmp_path / "tree.json").write_text("2")
    assert fingerprint(assembly) == first
    (tmp_path / "b.template.json").write_text('{"x": 2}')
    assert fingerprint(assembly) != first


def test_a_recorded_pid_counts_only_while_it_is_still_our_process():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert process_runs(child.pid, "time.sleep(30)")
        # Same pid, another program: what a pid left in .lab/ by an earlier session may have become.
        assert not process_runs(child.pid, "engine_main.py")
    finally:
        child.kill()
        child.wait()
    assert not process_runs(child.pid, "time.sleep(30)")


def test_overrides_replace_the_local_environment_keys_only() -> None:
    """The harness writes this context into its own cdk.json to deploy the stage another way."""
    from app.config import CONTEXT_KEY

    context = context_with({"authMode": "jwt", "useKmsCmk": None, "jwtAudience": ["lab"]})
    repository = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    local = context[CONTEXT_KEY]["environments"][LOCAL_ENV_NAME]

    assert CONTEXT_KEY == HARNESS_CONTEXT_KEY
    assert (local["authMode"], local["jwtAudience"]) == ("jwt", ["lab"])
    assert "useKmsCmk" not in local
    assert context[CONTEXT_KEY]["environments"]["dev"] == repository[CONTEXT_KEY]["environments"]["dev"]
    assert context["pipeline"] == repository["pipeline"]


def test_overrides_change_the_source_fingerprint() -> None:
    """A stage deployed with other overrides is not skipped as up to date."""
    assert source_fingerprint() == source_fingerprint({})
    assert source_fingerprint({"authMode": "jwt"}) != source_fingerprint()
