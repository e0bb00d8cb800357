"""Typed reading of the environment variables that app/ sets on each function (names.EnvVar)."""

from __future__ import annotations

import os

from functions.common.names import FAILURE_MODE_PARAMETER, EnvVar

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(RuntimeError):
    """A required environment variable is missing or malformed (a deployment defect, not bad input)."""


def env_str(name: EnvVar, default: str | None = None) -> str:
    value = os.environ.get(name.value, default)
    if value is None or value == "":
        raise ConfigError(f"environment variable {name.value} is required and not set")
    return value


def env_int(name: EnvVar, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = os.environ.get(name.value)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name.value}={raw!r} is not an integer") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise ConfigError(f"environment variable {name.value}={value} is outside [{minimum}, {maximum}]")
    return value


def env_float(name: EnvVar, default: float, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name.value)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name.value}={raw!r} is not a number") from None
    if not value >= minimum:
        raise ConfigError(f"environment variable {name.value}={value} is below {minimum}")
    return value


def env_bool(name: EnvVar, default: bool) -> bool:
    raw = os.environ.get(name.value)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"environment variable {name.value}={raw!r} is not a boolean")


def failure_mode_parameter_name() -> str:
    return env_str(EnvVar.FAILURE_MODE_PARAMETER, FAILURE_MODE_PARAMETER)
