"""The delivery pipeline's settings: cdk.json context key "pipeline", validated once at synth time.

Real account ids stay out of the repository: cdk.json holds placeholders, and the top-level context
keys in OVERRIDE_KEYS (from `-c` or a git-ignored cdk.context.json) replace them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.config import ACCOUNT_ID, AWS_REGION

CONTEXT_KEY = "pipeline"
# Top-level context keys that override the "pipeline" object (and the dev/prod stage accounts).
# The pipeline's own synth step reads them from an SSM parameter (contextParameterName): context
# given with `-c` would be lost at the first self-mutation.
OVERRIDE_KEYS: dict[str, str] = {
    "pipelineAccount": "account",
    "pipelineRegion": "region",
    "connectionArn": "connectionArn",
    "repository": "repository",
    "branch": "branch",
    "gamedayInProd": "gamedayInProd",
    "devAccount": "devAccount",
    "prodAccount": "prodAccount",
}

_CONNECTION_ARN = re.compile(
    r"^arn:aws[a-z-]*:(codeconnections|codestar-connections):[a-z0-9-]+:\d{12}:connection/[\w-]+$"
)
_REPOSITORY = re.compile(r"^[\w.-]+/[\w./-]+$")
_PARAMETER_NAME = re.compile(r"^/[\w./-]+$")
_SECRET_NAME = re.compile(r"^[\w/+=.@-]{1,512}$")
_TIMESPAN = re.compile(r"^\d+[smh]$")
_PIPELINE_NAME = re.compile(r"^[A-Za-z0-9.@_-]{1,100}$")


class PipelineConfigError(ValueError):
    """The "pipeline" context is invalid; the message lists every broken rule."""


@dataclass(frozen=True)
class LoadTestSettings:
    """The dev load test (`python -m loadtest`): Locust users and the gate's thresholds."""

    users: int = 10
    spawn_rate: float = 5.0
    run_time: str = "60s"
    rps_per_user: float = 2.0
    duplicate_pool_size: int = 20
    max_failure_ratio: float = 0.01
    max_p95_ms: float = 1500.0
    min_requests: int = 100
    verify_timeout_seconds: int = 180


@dataclass(frozen=True)
class PipelineConfig:
    """Where the pipeline lives, what it watches, and how its post-deploy checks run."""

    account: str
    region: str
    connection_arn: str
    repository: str
    branch: str = "main"
    pipeline_name: str = "ingestion-lab"
    # An SSM String parameter (pipeline account) holding the JSON the synth step writes to
    # cdk.context.json: the real account ids and anything else kept out of the repository.
    context_parameter_name: str = "/ingestion-lab/pipeline/cdk-context"
    gameday_in_prod: bool = False
    # authMode jwt: a Secrets Manager secret of the pipeline account holding a bearer token for smoke.
    jwt_token_secret_name: str = "ingestion-lab/pipeline/smoke-jwt"  # noqa: S105 - a name, not a secret
    step_timeout_minutes: int = 30
    dev_account: str | None = None
    prod_account: str | None = None
    load: LoadTestSettings = field(default_factory=LoadTestSettings)

    @property
    def stage_overrides(self) -> dict[str, dict[str, str]]:
        """Per-environment overrides for app.config.load_stage_config (cdk.json key names)."""
        overrides: dict[str, dict[str, str]] = {"dev": {}, "prod": {}}
        if self.dev_account:
            overrides["dev"]["account"] = self.dev_account
        if self.prod_account:
            overrides["prod"]["account"] = self.prod_account
        for values in overrides.values():
            values["pipelineAccount"] = self.account
        return overrides


_KEYS: dict[str, str] = {
    "account": "account",
    "region": "region",
    "connectionArn": "connection_arn",
    "repository": "repository",
    "branch": "branch",
    "pipelineName": "pipeline_name",
    "contextParameterName": "context_parameter_name",
    "gamedayInProd": "gameday_in_prod",
    "jwtTokenSecretName": "jwt_token_secret_name",
    "stepTimeoutMinutes": "step_timeout_minutes",
    "devAccount": "dev_account",
    "prodAccount": "prod_account",
    "load": "load",
}
_LOAD_KEYS: dict[str, str] = {
    "users": "users",
    "spawnRate": "spawn_rate",
    "runTime": "run_time",
    "rpsPerUser": "rps_per_user",
    "duplicatePoolSize": "duplicate_pool_size",
    "maxFailureRatio": "max_failure_ratio",
    "maxP95Ms": "max_p95_ms",
    "minRequests": "min_requests",
    "verifyTimeoutSeconds": "verify_timeout_seconds",
}
_LOAD_RANGES: dict[str, tuple[float, float]] = {
    "users": (1, 1000),
    "spawnRate": (0.1, 1000),
    "rpsPerUser": (0, 1000),
    "duplicatePoolSize": (1, 10_000),
    "maxFailureRatio": (0, 1),
    "maxP95Ms": (1, 60_000),
    "minRequests": (1, 10_000_000),
    "verifyTimeoutSeconds": (1, 3600),
}


def load_pipeline_config(context: Mapping[str, Any]) -> PipelineConfig:
    """The "pipeline" object of `context`, then the top-level OVERRIDE_KEYS on top of it."""
    section = context.get(CONTEXT_KEY)
    if not isinstance(section, Mapping):
        raise PipelineConfigError(f"{CONTEXT_KEY}: missing from the cdk.json context (an object is expected)")
    raw = dict(section)
    for top_level, key in OVERRIDE_KEYS.items():
        if context.get(top_level) is not None:
            raw[key] = context[top_level]
    return build_pipeline_config(raw)


def _as_bool(value: Any) -> Any:
    # `cdk -c gamedayInProd=true` passes the string "true".
    return {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value


def build_pipeline_config(raw: Mapping[str, Any]) -> PipelineConfig:
    """Validate a mapping of cdk.json keys into a PipelineConfig, or raise PipelineConfigError."""
    errors: list[str] = [f"{CONTEXT_KEY}.{key}: unknown key" for key in sorted(set(raw) - set(_KEYS))]
    load_raw = raw.get("load", {})
    if not isinstance(load_raw, Mapping):
        errors.append(f"{CONTEXT_KEY}.load: must be an object")
        load_raw = {}
    errors += [f"{CONTEXT_KEY}.load.{key}: unknown key" for key in sorted(set(load_raw) - set(_LOAD_KEYS))]
    for key in ("account", "region", "connectionArn", "repository"):
        if key not in raw:
            errors.append(f"{CONTEXT_KEY}.{key}: required")
    if errors:
        raise PipelineConfigError(_report(errors))

    values = {attr: raw[key] for key, attr in _KEYS.items() if key in raw and key != "load"}
    values["gameday_in_prod"] = _as_bool(values.get("gameday_in_prod", False))
    load = LoadTestSettings(**{_LOAD_KEYS[key]: value for key, value in load_raw.items()})
    config = PipelineConfig(**values, load=load)
    errors = _rule_violations(config, load_raw)
    if errors:
        raise PipelineConfigError(_report(errors))
    return config


def _rule_violations(c: PipelineConfig, load_raw: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []

    def check(ok: bool, key: str, rule: str, value: Any) -> None:
        if not ok:
            problems.append(f"{CONTEXT_KEY}.{key}: {rule}, got {value!r}")

    accounts = {"account": c.account, "devAccount": c.dev_account, "prodAccount": c.prod_account}
    for key, value in accounts.items():
        if key == "account" or value is not None:
            check(_matches(ACCOUNT_ID, value), key, "must be a 12-digit account id", value)
    check(_matches(AWS_REGION, c.region), "region", "must be an AWS region", c.region)
    check(_matches(_CONNECTION_ARN, c.connection_arn), "connectionArn", "must be a CodeConnections ARN",
          c.connection_arn)  # fmt: skip
    check(_matches(_REPOSITORY, c.repository), "repository", "must be owner/name", c.repository)
    check(isinstance(c.branch, str) and bool(c.branch.strip()), "branch", "must be a branch name", c.branch)
    check(
        _matches(_PIPELINE_NAME, c.pipeline_name), "pipelineName", "must be a pipeline name", c.pipeline_name
    )
    check(_matches(_PARAMETER_NAME, c.context_parameter_name), "contextParameterName",
          "must be an SSM parameter name starting with /", c.context_parameter_name)  # fmt: skip
    check(_matches(_SECRET_NAME, c.jwt_token_secret_name), "jwtTokenSecretName",
          "must be a Secrets Manager secret name", c.jwt_token_secret_name)  # fmt: skip
    check(isinstance(c.gameday_in_prod, bool), "gamedayInProd", "must be true or false", c.gameday_in_prod)
    check(
        isinstance(c.step_timeout_minutes, int) and 5 <= c.step_timeout_minutes <= 480,
        "stepTimeoutMinutes",
        "must be an integer between 5 and 480 (CodeBuild's limits)",
        c.step_timeout_minutes,
    )
    for key, (low, high) in _LOAD_RANGES.items():
        if key in load_raw:
            value = load_raw[key]
            ok = isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high
            check(ok, f"load.{key}", f"must be a number between {low:g} and {high:g}", value)
    for key in ("users", "duplicatePoolSize", "minRequests", "verifyTimeoutSeconds"):
        if key in load_raw and not isinstance(load_raw[key], int):
            check(False, f"load.{key}", "must be an integer", load_raw[key])
    check(bool(_TIMESPAN.match(str(c.load.run_time))), "load.runTime", "must look like 90s, 5m or 1h",
          c.load.run_time)  # fmt: skip
    return problems


def _matches(pattern: re.Pattern[str], value: Any) -> bool:
    return isinstance(value, str) and pattern.match(value) is not None


def _report(errors: list[str]) -> str:
    return "invalid pipeline configuration:\n  - " + "\n  - ".join(errors)
