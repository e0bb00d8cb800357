"""The pipeline's post-deploy steps against the local stage.

in_stage.sh assumes a role through a profile and fetches the API key as that role; smoke.sh passes
on a healthy API (signing the operator route as that role) and fails otherwise; and the dev steps'
exact commands, fed the same outputs, pass as the checks role the stage deploys for the pipeline
(the engine enforces that role's policy). Scripts run as the steps run them: through bash.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aws_cdk import App

from app import load_stage_config, stage_context
from app.constructs.gameday_role import gameday_role_name
from functions.common import names
from lab.localcloud.engine import ACCOUNT_ID, REGION, aws_env
from pipeline import steps
from pipeline.config import LoadTestSettings
from stage_client.target import REPO_ROOT, Target
from tests.local.session_stage import SESSION_STAGE_OVERRIDES

if TYPE_CHECKING:  # the fixture's type; conftest itself is loaded by pytest, not imported
    from tests.local.conftest import LocalEngine

pytestmark = pytest.mark.local

IN_STAGE = ["bash", str(REPO_ROOT / steps.IN_STAGE)]
SMOKE_SCRIPT = ["bash", str(REPO_ROOT / steps.SMOKE)]
# What the smoke test's GET /redrive/preview needs: the operator route takes IAM authorization.
PREVIEW = {
    "Effect": "Allow",
    "Action": "execute-api:Invoke",
    "Resource": f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:*/*/GET/redrive/preview",
}
SCRIPT_TIMEOUT_S = 120
STEP_TIMEOUT_S = 600


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def checks_role(local_engine: LocalEngine, statements: list[dict[str, Any]]) -> str:
    """A role like the stage's checks role: trusted by the (pipeline) account, allowed `statements`."""
    iam = local_engine.client("iam")
    name = unique("pipeline-checks")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    policy = {"Version": "2012-10-17", "Statement": statements}
    iam.put_role_policy(RoleName=name, PolicyName="PipelineChecks", PolicyDocument=json.dumps(policy))
    return str(arn)


def run_in_stage(
    local_engine: LocalEngine, env: dict[str, str], *command: str, timeout: float = SCRIPT_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    # Only what a CodeBuild step would have: no developer profile or credentials leak in; `python`
    # is this interpreter, as the step's `python` is the one its install phase filled.
    base = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
    return subprocess.run(
        [*IN_STAGE, *command],
        cwd=REPO_ROOT,
        env={**base, **aws_env(local_engine.endpoint_url), "STAGE_REGION": REGION, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_smoke_passes_as_the_assumed_role_with_the_api_key_it_may_read(
    local_engine: LocalEngine, local_target: Target
) -> None:
    secrets = local_engine.client("secretsmanager")
    secret = secrets.create_secret(Name=unique("ingestion-local/api-key"), SecretString="local-smoke-key")
    role_arn = checks_role(
        local_engine,
        [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secret["ARN"]}, PREVIEW],
    )
    env = {
        "STAGE_ROLE_ARN": role_arn,
        "AuthMode": "apiKey",
        "API_KEY_SECRET_ID": secret["Name"],
        "ApiUrl": local_target.api_url,
    }
    # The command sees the key in its environment, and smoke.sh sends it (the local API ignores it).
    key_check = run_in_stage(local_engine, env, "bash", "-c", 'test "$LAB_API_KEY" = local-smoke-key')
    assert key_check.returncode == 0, key_check.stderr

    smoke = run_in_stage(local_engine, env, *SMOKE_SCRIPT)

    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    role_name = role_arn.rsplit("/", 1)[1]
    assert f"running as arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role_name}/" in smoke.stdout
    assert "smoke: POST /events -> 202" in smoke.stdout
    assert "smoke: GET /redrive/preview?maxMessages=1 -> 200" in smoke.stdout
    assert "smoke: PASSED" in smoke.stdout


def test_each_run_assumes_the_role_under_a_session_name_of_its_own(local_engine: LocalEngine) -> None:
    """The AWS CLI caches assumed-role credentials in ~/.aws/cli/cache by role and session name, not
    by source credentials: with a repeated name (build numbers restart with each local cloud) a run
    reused keys an earlier engine had issued, and failed with InvalidClientTokenId."""
    role_arn = checks_role(local_engine, [PREVIEW])
    env = {"STAGE_ROLE_ARN": role_arn, "AuthMode": "none", "CODEBUILD_BUILD_NUMBER": "7"}
    sessions = []
    for _ in range(2):
        result = run_in_stage(local_engine, env, "true")
        assert result.returncode == 0, result.stderr
        (line,) = [line for line in result.stdout.splitlines() if line.startswith("in_stage: running as ")]
        sessions.append(line.split()[3].rsplit("/", 1)[1])
    assert sessions[0].startswith("pipeline-checks-7-")
    assert sessions[0] != sessions[1]


def test_the_command_is_held_to_the_role_policy(local_engine: LocalEngine) -> None:
    secrets = local_engine.client("secretsmanager")
    secret = secrets.create_secret(Name=unique("ingestion-local/api-key"), SecretString="unreadable")
    role_arn = checks_role(
        local_engine, [{"Effect": "Allow", "Action": "sqs:GetQueueAttributes", "Resource": "*"}]
    )
    result = run_in_stage(
        local_engine,
        {"STAGE_ROLE_ARN": role_arn, "AuthMode": "apiKey", "API_KEY_SECRET_ID": secret["Name"]},
        "true",
    )
    assert "assumed-role/" in result.stdout, result.stderr  # the role was assumed, then refused
    assert result.returncode != 0
    assert "AccessDenied" in result.stderr


def test_the_jwt_is_read_with_the_pipeline_credentials_before_the_role_is_assumed(
    local_engine: LocalEngine,
) -> None:
    # The bearer token lives in the pipeline account, where the stage's role has no access.
    secrets = local_engine.client("secretsmanager")
    secret = secrets.create_secret(Name=unique("ingestion-lab/pipeline/smoke-jwt"), SecretString="h.p.s")
    role_arn = checks_role(
        local_engine, [{"Effect": "Allow", "Action": "sqs:GetQueueAttributes", "Resource": "*"}]
    )
    result = run_in_stage(
        local_engine,
        {"STAGE_ROLE_ARN": role_arn, "AuthMode": "jwt", "JWT_SECRET_ID": secret["Name"]},
        "bash",
        "-c",
        'test "$LAB_BEARER_TOKEN" = h.p.s && test -z "${LAB_API_KEY:-}"',
    )
    assert "assumed-role/" in result.stdout, result.stderr
    assert result.returncode == 0, result.stderr


def test_a_role_that_cannot_be_assumed_stops_the_step_with_its_name(local_engine: LocalEngine) -> None:
    missing = f"arn:aws:iam::{ACCOUNT_ID}:role/{unique('no-such-role')}"
    result = run_in_stage(local_engine, {"STAGE_ROLE_ARN": missing}, "true")
    assert result.returncode == 1
    assert f"cannot assume {missing}" in result.stderr


def test_smoke_fails_when_the_api_does_not_answer_as_expected(
    local_engine: LocalEngine, local_target: Target
) -> None:
    result = run_in_stage(local_engine, {"ApiUrl": f"{local_target.api_url}/no-such-prefix"}, *SMOKE_SCRIPT)
    assert result.returncode == 1
    assert "smoke: FAILED POST /events" in result.stderr


# --- The dev steps, as the stage's own checks role ------------------------------------------------


@pytest.fixture(scope="module")
def stage_checks_role(local_engine: LocalEngine, local_target: Target) -> str:
    """The checks role of the session's stage, deployed as the pipeline configures it (pipelineAccount
    set: tests/local/conftest.py), under the name the pipeline gives its steps before the stage exists."""
    app = App()
    config = load_stage_config(stage_context(app), "local", **SESSION_STAGE_OVERRIDES)
    role_name = gameday_role_name(config.prefix)
    role_arn = f"arn:aws:iam::{ACCOUNT_ID}:role/{role_name}"
    assert local_engine.client("iam").get_role(RoleName=role_name)["Role"]["Arn"] == role_arn
    return role_arn


def step_env(target: Target, outputs: tuple[names.Output, ...], role_arn: str) -> dict[str, str]:
    """What the pipeline gives the step: its outputs (env_from_cfn_outputs) and the role to assume."""
    env = {output.value: target.outputs[output.value] for output in outputs}
    # The stage's ApiUrl names a *.localhost host that curl resolves and Python does not.
    env[names.Output.API_URL.value] = target.api_url
    return {**env, "STAGE_ROLE_ARN": role_arn}


def assert_ran_as(result: subprocess.CompletedProcess[str], role_arn: str) -> None:
    role_name = role_arn.rsplit("/", 1)[1]
    assert f"assumed-role/{role_name}/" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_dev_smoke_step_passes_as_the_checks_role(
    local_engine: LocalEngine, local_target: Target, stage_checks_role: str
) -> None:
    result = run_in_stage(
        local_engine, step_env(local_target, steps.SMOKE_OUTPUTS, stage_checks_role), *SMOKE_SCRIPT
    )
    assert_ran_as(result, stage_checks_role)
    assert "smoke: PASSED" in result.stdout


def test_dev_load_step_passes_its_gate_as_the_checks_role(
    local_engine: LocalEngine, local_target: Target, stage_checks_role: str, tmp_path: Path
) -> None:
    # The local cloud shares two cores with Locust: a short run and a looser latency threshold.
    settings = LoadTestSettings(
        users=2, spawn_rate=2, run_time="10s", rps_per_user=2, min_requests=10, max_p95_ms=2000
    )
    command = [*shlex.split(steps.load_test_command(settings, "local")), "--out-dir", str(tmp_path)]
    env = step_env(local_target, steps.LOAD_OUTPUTS, stage_checks_role)

    result = run_in_stage(local_engine, env, *command, timeout=STEP_TIMEOUT_S)

    assert_ran_as(result, stage_checks_role)
    gate = json.loads((tmp_path / "gate.json").read_text())
    assert gate["passed"] is True
    assert gate["verify"]["succeeded"] == gate["verify"]["expected"] > 0


def test_dev_gameday_step_passes_as_the_checks_role_and_leaves_failure_mode_none(
    local_engine: LocalEngine, local_target: Target, stage_checks_role: str
) -> None:
    env = step_env(local_target, steps.GAMEDAY_OUTPUTS, stage_checks_role)
    try:
        result = run_in_stage(local_engine, env, *shlex.split(steps.GAMEDAY_COMMAND), timeout=STEP_TIMEOUT_S)
    finally:
        reset = run_in_stage(local_engine, env, *shlex.split(steps.RESET_FAILURE_MODE_COMMAND))
    assert_ran_as(result, stage_checks_role)
    assert_ran_as(reset, stage_checks_role)
    mode = local_engine.client("ssm").get_parameter(Name=names.FAILURE_MODE_PARAMETER)["Parameter"]["Value"]
    assert mode == names.FailureMode.NONE.value
