"""boto3 clients and the failure-mode reader, built once per container from the environment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from functions.common.config import env_bool, env_int, failure_mode_parameter_name
from functions.common.failure_mode import DEFAULT_CACHE_SECONDS, DEFAULT_MAX_TTL_SECONDS, FailureModeReader
from functions.common.names import EnvVar

if TYPE_CHECKING:
    from functions.common.parameter_provider import ParameterWithMetadataProvider

# Standard retry mode with a bounded number of attempts: fail fast enough that a batch or an API
# request gets an answer inside its own timeout.
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)
# A read the caller can do without (the ingest's early conflict check): one attempt of at most 1 s
# to connect and 1 s to answer, so a table that does not answer costs the request 2 s, far inside
# the ingest's timeout, and the request goes on without it. With _CLIENT_CONFIG it would cost up
# to 3 x (3 + 10) s: the function would time out first and API Gateway would answer 5xx.
# (A GetItem answers in milliseconds: Amazon DynamoDB Developer Guide, "What is Amazon DynamoDB".)
OPTIONAL_READ_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 1}, connect_timeout=1, read_timeout=1
)


def client(service: str) -> Any:
    return boto3.client(service, config=_CLIENT_CONFIG)


def optional_read_client(service: str) -> Any:
    """For reads whose failure the caller handles by going on without them."""
    return boto3.client(service, config=OPTIONAL_READ_CONFIG)


def failure_mode_reader_from_env(ssm_client: Any | None = None) -> FailureModeReader:
    enabled = env_bool(EnvVar.FAILURE_INJECTION_ENABLED, default=False)
    provider: ParameterWithMetadataProvider | None = None
    if enabled:
        # Imported only here: with injection off (prod) the parameters utility is never loaded.
        from functions.common.parameter_provider import ParameterWithMetadataProvider  # noqa: PLC0415

        provider = ParameterWithMetadataProvider(ssm_client or client("ssm"))
    return FailureModeReader(
        provider,
        parameter_name=failure_mode_parameter_name(),
        enabled=enabled,
        cache_seconds=env_int(EnvVar.FAILURE_MODE_CACHE_SECONDS, DEFAULT_CACHE_SECONDS, minimum=0),
        max_ttl_seconds=env_int(EnvVar.FAILURE_MODE_MAX_TTL_SECONDS, DEFAULT_MAX_TTL_SECONDS, minimum=1),
    )
