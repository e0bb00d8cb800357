"""Every handler imports with no AWS configuration at all, and names a missing variable clearly."""

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
