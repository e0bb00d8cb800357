"""Session fixtures of the local tier: one engine on a free port, and the deployed IngestionLocal stage.

Everything runs under a temporary state dir (never the developer's .lab) and is stopped at the end.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import tempfile
import textwrap
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from lab.harness import lifecycle
from lab.harness.cdk import ensure_cdk
from lab.harness.paths import ENGINE_LOCK, RUNTIME_REQUIREMENTS, StateDir
from lab.localcloud.engine import (
    ACCOUNT_ID,
    DEFAULT_DUPLICATE_SHARE,
    REGION,
    EngineClients,
    EngineInfo,
    aws_env,
    duplicate_share_default,
    ensure_engine_venv,
)
from stage_client.target import Target
from tests import REPO_ROOT
from tests.local.session_stage import SESSION_STAGE_OVERRIDES


# `make test-local` runs this folder as two pytest processes side by side, each with its own engine
# (the session fixtures below): the tests on the deployed stage (marked deployed_stage) share one engine
# and one deployment; the engine's conformance tests, and the tests that start labs of their own, need
# no deployment and run beside them. (pytest-xdist's loadgroup does not group on pytest 9: it renames
# item._nodeid, which pytest 9 no longer reads.)
def pytest_itemcollected(item: pytest.Item) -> None:
    """Every test of this folder runs against the local cloud: mark it so `-m "not local"` skips it,
    and mark the tests of the deployed stage."""
    if Path(__file__).parent in Path(str(item.fspath)).parents:
        item.add_marker(pytest.mark.local)
        if "local_target" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.deployed_stage)


@dataclass(frozen=True)
class LocalEngine:
    """A running engine of this test session and boto3 clients bound to it."""

    state: StateDir
    info: EngineInfo

    @property
    def endpoint_url(self) -> str:
        return self.info.endpoint_url

    def client(self, service: str) -> Any:
        env = aws_env(self.endpoint_url)
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )


@pytest.fixture(autouse=True, scope="session")
def _local_installs() -> None:
    """The engine's virtualenv and the pinned CDK CLI, installed by one test process at a time: two
    installing into the same folder at once (a fresh clone) would break both. One lock file per
    checkout, in the system's temporary folder: every pytest process of `make test` (the xdist
    workers of the stage tier, whose temporary folders share a parent, and the engine tier, whose
    temporary folder does not) takes the same one. flock (stdlib) rather than a dependency for one
    exclusive lock, released when the file closes."""
    checkout = hashlib.sha256(str(REPO_ROOT.resolve()).encode()).hexdigest()[:16]
    lock_file = Path(tempfile.gettempdir()) / f"ingestion-lab-local-installs-{checkout}.lock"
    with lock_file.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        ensure_engine_venv(RUNTIME_REQUIREMENTS, constraints=ENGINE_LOCK)
        ensure_cdk()


@pytest.fixture(scope="session")
def local_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEngine]:
    state = StateDir(tmp_path_factory.mktemp("lab-state"))
    # IAM enforcement and the at-least-once mode whatever LAB_AUTH / LAB_DUPLICATE_SHARE the shell
    # holds: the tests rely on both (a share may be raised, never turned off).
    share = duplicate_share_default() or DEFAULT_DUPLICATE_SHARE
    info = lifecycle.start(state, auth=True, duplicate_share=share)
    try:
        yield LocalEngine(state=state, info=info)
    finally:
        lifecycle.down(state)


@pytest.fixture(autouse=True)
def _engine_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3 clients of local tests (stage_client.target.Target's too) use the engine's test credentials,
    whatever another tier's conftest put in the environment when one `pytest` run collects all."""
    for key in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")


@pytest.fixture(scope="session")
def local_target(local_engine: LocalEngine) -> Target:
    """The IngestionLocal stage deployed once per session into the session's engine (agent running),
    with the pipeline's checks role (tests/local/session_stage.py)."""
    return lifecycle.up(local_engine.state, sample_events=0, overrides=SESSION_STAGE_OVERRIDES)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def name() -> Callable[[str], str]:
    """Unique resource names, so tests sharing the session engine never collide."""
    return unique


FunctionFactory = Callable[..., str]


@pytest.fixture
def make_function(local_engine: LocalEngine) -> FunctionFactory:
    """Create a Python function from inline source; returns its name. Role policy optional."""
    iam_default = local_engine.client("iam")
    lam_default = local_engine.client("lambda")

    def _account_clients(account: str) -> tuple[Any, Any]:
        clients = EngineClients(local_engine.info, account=account)
        return clients("iam"), clients("lambda")

    def create(
        source: str,
        *,
        timeout: int = 10,
        environment: dict[str, str] | None = None,
        policy: dict[str, Any] | None = None,
        log_group: str | None = None,
        account: str | None = None,
    ) -> str:
        """account: another local account to create it in (default: the engine's own)."""
        iam, lam = (iam_default, lam_default) if account is None else _account_clients(account)
        function_name = unique("fn")
        role_name = f"{function_name}-role"
        role = iam.create_role(
            RoleName=role_name,
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )["Role"]
        if policy is not None:
            iam.put_role_policy(RoleName=role_name, PolicyName="inline", PolicyDocument=json.dumps(policy))
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("handler.py", textwrap.dedent(source))
        kwargs: dict[str, Any] = {}
        if log_group:
            kwargs["LoggingConfig"] = {"LogFormat": "Text", "LogGroup": log_group}
        lam.create_function(
            FunctionName=function_name,
            Runtime="python3.11",
            Role=role["Arn"],
            Handler="handler.lambda_handler",
            Code={"ZipFile": archive.getvalue()},
            Timeout=timeout,
            Environment={"Variables": environment or {}},
            **kwargs,
        )
        return str(function_name)

    return create


def queue_arn(queue_name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{queue_name}"


def wait_for(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.25, what: str = "") -> Any:
    """Poll until predicate() is truthy; return its value or fail the test naming what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what or predicate}")
        time.sleep(interval)


@pytest.fixture
def wait() -> Callable[..., Any]:
    return wait_for


@pytest.fixture
def arn_of_queue() -> Callable[[str], str]:
    return queue_arn
