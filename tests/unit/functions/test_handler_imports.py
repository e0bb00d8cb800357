"""Every handler imports with no AWS configuration at all, names a missing variable clearly, and
leaves out of its cold start the heavy modules it does not need there."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from functions.common.config import ConfigError, env_bool, env_int, env_str
from functions.common.names import EnvVar, Handler


def test_every_handler_imports_without_aws_environment() -> None:
    modules = sorted({handler.value.rsplit(".", 1)[0] for handler in Handler})
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\nprint('ok')"
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "POWERTOOLS_"))
    }
    result = subprocess.run(
        [sys.executable, "-c", code, *modules],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def _loaded_at_import(handler_module: str, candidates: list[str], environment: dict[str, str]) -> list[str]:
    """Which of `candidates` a fresh interpreter holds after importing `handler_module` alone."""
    code = (
        "import importlib, sys\n"
        "importlib.import_module(sys.argv[1])\n"
        "print(' '.join(name for name in sys.argv[2:] if name in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, handler_module, *candidates],
        capture_output=True,
        text=True,
        env={**os.environ, **environment},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


# Modules the ingest and the worker once loaded at import and no longer need there, each a share of
# the cold start that issue 14 bounds (docs/performance.md, "Cold-start imports"): the router and the
# event classes of every service (the ingest reads its HTTP API event itself, the worker its SQS
# records), the batch utility with asyncio (the worker answers its partial batch response itself),
# the parameters utility (loaded only where failure injection is on, at the first read), and the
# X-Ray SDK where tracing is off (the local cloud sets POWERTOOLS_TRACE_DISABLED).
KEPT_OUT_AT_IMPORT = {
    "functions.ingest.handler": [
        "aws_lambda_powertools.event_handler",
        "aws_lambda_powertools.utilities.data_classes",
        "aws_lambda_powertools.utilities.parameters",
        "asyncio",
        "aws_xray_sdk",
    ],
    "functions.worker.handler": [
        "aws_lambda_powertools.utilities.data_classes",
        "aws_lambda_powertools.utilities.batch",
        "asyncio",
        "aws_lambda_powertools.utilities.parameters",
        "aws_xray_sdk",
    ],
}


@pytest.mark.parametrize("handler_module", sorted(KEPT_OUT_AT_IMPORT))
def test_heavy_modules_stay_out_of_the_cold_start(handler_module: str) -> None:
    # As deployed to Lambda with tracing off and failure injection on (the local stage's settings).
    environment = {
        "LAMBDA_TASK_ROOT": "/var/task",
        EnvVar.POWERTOOLS_TRACE_DISABLED.value: "true",
        EnvVar.FAILURE_INJECTION_ENABLED.value: "true",
    }
    assert _loaded_at_import(handler_module, KEPT_OUT_AT_IMPORT[handler_module], environment) == []


def test_the_import_check_sees_a_module_that_is_loaded() -> None:
    """The check above can fail: the worker does load Powertools' Logger (and boto3)."""
    loaded = ["aws_lambda_powertools.logging", "boto3"]
    assert _loaded_at_import("functions.worker.handler", loaded, {}) == loaded


def test_missing_and_malformed_variables_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EnvVar.QUEUE_URL.value, raising=False)
    with pytest.raises(ConfigError, match="QUEUE_URL is required"):
        env_str(EnvVar.QUEUE_URL)
    monkeypatch.setenv(EnvVar.TTL_DAYS.value, "seven")
    with pytest.raises(ConfigError, match="TTL_DAYS='seven' is not an integer"):
        env_int(EnvVar.TTL_DAYS, 7)
    monkeypatch.setenv(EnvVar.TTL_DAYS.value, "0")
    with pytest.raises(ConfigError, match="outside"):
        env_int(EnvVar.TTL_DAYS, 7, minimum=1)
    monkeypatch.setenv(EnvVar.FAILURE_INJECTION_ENABLED.value, "maybe")
    with pytest.raises(ConfigError, match="not a boolean"):
        env_bool(EnvVar.FAILURE_INJECTION_ENABLED, default=False)
    monkeypatch.setenv(EnvVar.FAILURE_INJECTION_ENABLED.value, "TRUE")
    assert env_bool(EnvVar.FAILURE_INJECTION_ENABLED, default=False) is True
