"""boto3 clients and the failure-mode reader, built once per container from the environment."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from functions.common.config import env_bool, env_int, failure_mode_parameter_name
from functions.common.failure_mode import (
    DEFAULT_CACHE_SECONDS,
    DEFAULT_MAX_TTL_SECONDS,
    FailureModeReader,
    ParameterWithMetadataProvider,
)
from functions.common.names import EnvVar

# Standard retry mode with a bounded number of attempts: fail fast enough that a batch or an API
# request gets an answer inside its own timeout.
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)


def client(service: str) -> Any:
    return boto3.client(service, config=_CLIENT_CONFIG)


def failure_mode_reader_from_env(ssm_client: Any | None = None) -> FailureModeReader:
    enabled = env_bool(EnvVar.FAILURE_INJECTION_ENABLED, default=False)
    provider = ParameterWithMetadataProvider(ssm_client or client("ssm")) if enabled else None
    return FailureModeReader(
        provider,
        parameter_name=failure_mode_parameter_name(),
        enabled=enabled,
        cache_seconds=env_int(EnvVar.FAILURE_MODE_CACHE_SECONDS, DEFAULT_CACHE_SECONDS, minimum=0),
        max_ttl_seconds=env_int(EnvVar.FAILURE_MODE_MAX_TTL_SECONDS, DEFAULT_MAX_TTL_SECONDS, minimum=1),
    )
