"""The typed stage configuration: one frozen object per environment, built from cdk.json context.

Every key is validated once, at synth time; an error names the environment, the key and the rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from functions.common import names

CONTEXT_KEY = "ingestion"
"""The cdk.json context key holding {"defaults": {...}, "environments": {"<envName>": {...}}}."""

AuthMode = Literal["none", "apiKey", "jwt"]
Architecture = Literal["x86_64", "arm64"]

AUTH_MODES: tuple[str, ...] = ("none", "apiKey", "jwt")
ARCHITECTURES: tuple[str, ...] = ("x86_64", "arm64")
# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS: tuple[int, ...] = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
VISIBILITY_FACTOR = 6
"""AWS guidance for SQS event sources: queue visibility >= 6 x the function timeout."""
SQS_MAX_VISIBILITY_SECONDS = 43_200
SQS_MAX_RETENTION_DAYS = 14
SQS_MAX_MESSAGE_BYTES = 1_048_576
SQS_MAX_DELAY_SECONDS = 900
LAMBDA_MAX_TIMEOUT_SECONDS = 900
SQS_BATCH_SIZE_WITHOUT_WINDOW = 10

_ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{1,15}$")
ACCOUNT_ID = re.compile(r"^\d{12}$")
AWS_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ORIGIN = re.compile(r"^(https://[a-z0-9.-]+(:\d+)?|http://(localhost|127\.0\.0\.1)(:\d+)?)$")
_KMS_ALIAS = re.compile(r"^alias/[a-zA-Z0-9/_-]{1,240}$")


class ConfigError(ValueError):
    """The context does not describe a valid stage; the message lists every broken rule."""


@dataclass(frozen=True)
class AlarmConfig:
    """Thresholds and periods of the stage's alarms (cdk.json key "alarms")."""

    period_seconds: int = 60
    evaluation_periods: int = 5
    dlq_visible_threshold: int = 0
    dlq_age_seconds: int = 300
    main_queue_age_seconds: int = 300
    main_queue_visible_threshold: int = 1000
    lambda_errors_threshold: int = 0
    lambda_throttles_threshold: int = 0
    quarantine_threshold: int = 0


@dataclass(frozen=True)
class StageConfig:
    """Everything that differs between environments; read by app/ and by pipeline/."""

    env_name: str
    account: str
    region: str
    repo_url: str = "https://github.com/example/ingestion-lab"
    # Queues and the worker event source.
    max_receive_count: int = 5
    batch_size: int = 10
    max_batching_window_seconds: int = 2
    worker_timeout_seconds: int = 30
    queue_visibility_seconds: int | None = None  # None = VISIBILITY_FACTOR x worker_timeout_seconds
    worker_max_concurrency: int = 5
    worker_reserved_concurrency: int | None = None
    main_queue_retention_days: int = 4
    dlq_retention_days: int = 14
    max_message_size_bytes: int = 262_144
    max_body_bytes: int = 65_536
    # Functions.
    ingest_timeout_seconds: int = 10
    redrive_timeout_seconds: int = 300
    function_memory_mb: int = 256
    architecture: Architecture = "arm64"
    # True: the layer ARN of the Powertools release pinned in requirements-runtime.txt, resolved at
    # deploy time from the public SSM parameter. False (local cloud): the ARN built from
    # powertools_layer_version.
    powertools_layer_from_ssm: bool = True
    powertools_layer_version: int = 36
    log_retention_days: int = 30
    log_level: str = "INFO"
    # Encryption.
    use_kms_cmk: bool = False
    kms_alias: str = ""
    # Alarm notifications.
    alarm_email: str | None = None
    webhook_url: str | None = None
    alarms: AlarmConfig = field(default_factory=AlarmConfig)
    # API.
    auth_mode: AuthMode = "none"
    jwt_issuer: str | None = None
    jwt_audience: tuple[str, ...] = ()
    cors_allowed_origins: tuple[str, ...] = ()
    api_throttling_rate_limit: int = 50
    api_throttling_burst_limit: int = 100
    # State.
    ttl_days: int = 7
    deletion_protection: bool = False
    # Break/fix guardrails and redrive storm protection.
    failure_injection_enabled: bool = True
    failure_mode_max_ttl_seconds: int = 900
    failure_mode_cache_seconds: int = 5
    max_redrives_per_message: int = 3
    redrive_max_messages_per_second: int = 50
    # AWS Fault Injection Service experiment templates.
    fis_enabled: bool = False
    fis_experiment_duration_minutes: int = 5
    # CloudWatch Logs Insights saved queries (AWS::Logs::QueryDefinition): the local cloud's engine
    # cannot create that resource type, so the local environment turns them off.
    query_definitions_enabled: bool = True
    # CDK Pipelines: the account whose post-deploy steps assume the gameday role.
    pipeline_account: str | None = None

    @property
    def prefix(self) -> str:
        """Prefix of every physical name in the stage (one stage per account and region)."""
        return f"{names.RESOURCE_PREFIX}-{self.env_name}"

    @property
    def visibility_timeout_seconds(self) -> int:
        return (
            self.queue_visibility_seconds
            if self.queue_visibility_seconds is not None
            else visibility_timeout_for(self.worker_timeout_seconds)
        )

    @property
    def resolved_kms_alias(self) -> str:
        return self.kms_alias or f"alias/{self.prefix}"

    @property
    def is_local(self) -> bool:
        return self.env_name == "local"

    def runbook_url(self, runbook: str) -> str:
        return f"{self.repo_url.rstrip('/')}/blob/main/ops/runbooks/{runbook}.md"


def visibility_timeout_for(worker_timeout_seconds: int) -> int:
    return VISIBILITY_FACTOR * worker_timeout_seconds


# cdk.json key -> StageConfig field; the README's Configuration table documents the same keys.
_KEYS: dict[str, str] = {
    "envName": "env_name",
    "account": "account",
    "region": "region",
    "repoUrl": "repo_url",
    "maxReceiveCount": "max_receive_count",
    "batchSize": "batch_size",
    "maxBatchingWindowSeconds": "max_batching_window_seconds",
    "workerTimeoutSeconds": "worker_timeout_seconds",
    "queueVisibilitySeconds": "queue_visibility_seconds",
    "workerMaxConcurrency": "worker_max_concurrency",
    "workerReservedConcurrency": "worker_reserved_concurrency",
    "mainQueueRetentionDays": "main_queue_retention_days",
    "dlqRetentionDays": "dlq_retention_days",
    "maxMessageSizeBytes": "max_message_size_bytes",
    "maxBodyBytes": "max_body_bytes",
    "ingestTimeoutSeconds": "ingest_timeout_seconds",
    "redriveTimeoutSeconds": "redrive_timeout_seconds",
    "functionMemoryMb": "function_memory_mb",
    "architecture": "architecture",
    "powertoolsLayerFromSsm": "powertools_layer_from_ssm",
    "powertoolsLayerVersion": "powertools_layer_version",
    "logRetentionDays": "log_retention_days",
    "logLevel": "log_level",
    "useKmsCmk": "use_kms_cmk",
    "kmsAlias": "kms_alias",
    "alarmEmail": "alarm_email",
    "webhookUrl": "webhook_url",
    "alarms": "alarms",
    "authMode": "auth_mode",
    "jwtIssuer": "jwt_issuer",
    "jwtAudience": "jwt_audience",
    "corsAllowedOrigins": "cors_allowed_origins",
    "apiThrottlingRateLimit": "api_throttling_rate_limit",
    "apiThrottlingBurstLimit": "api_throttling_burst_limit",
    "ttlDays": "ttl_days",
    "deletionProtection": "deletion_protection",
    "failureInjectionEnabled": "failure_injection_enabled",
    "failureModeMaxTtlSeconds": "failure_mode_max_ttl_seconds",
    "failureModeCacheSeconds": "failure_mode_cache_seconds",
    "maxRedrivesPerMessage": "max_redrives_per_message",
    "redriveMaxMessagesPerSecond": "redrive_max_messages_per_second",
    "fisEnabled": "fis_enabled",
    "fisExperimentDurationMinutes": "fis_experiment_duration_minutes",
    "queryDefinitionsEnabled": "query_definitions_enabled",
    "pipelineAccount": "pipeline_account",
}
_ALARM_KEYS: dict[str, str] = {
    "periodSeconds": "period_seconds",
    "evaluationPeriods": "evaluation_periods",
    "dlqVisibleThreshold": "dlq_visible_threshold",
    "dlqAgeSeconds": "dlq_age_seconds",
    "mainQueueAgeSeconds": "main_queue_age_seconds",
    "mainQueueVisibleThreshold": "main_queue_visible_threshold",
    "lambdaErrorsThreshold": "lambda_errors_threshold",
    "lambdaThrottlesThreshold": "lambda_throttles_threshold",
    "quarantineThreshold": "quarantine_threshold",
}
_INT_RANGES: dict[str, tuple[int, int]] = {
    "maxReceiveCount": (1, 1000),
    "batchSize": (1, 10_000),
    "maxBatchingWindowSeconds": (0, 300),
    "workerTimeoutSeconds": (1, LAMBDA_MAX_TIMEOUT_SECONDS),
    "queueVisibilitySeconds": (0, SQS_MAX_VISIBILITY_SECONDS),
    # The SQS event source's MaximumConcurrency accepts 2..1000.
    "workerMaxConcurrency": (2, 1000),
    "workerReservedConcurrency": (1, 10_000),
    "mainQueueRetentionDays": (1, SQS_MAX_RETENTION_DAYS),
    "dlqRetentionDays": (1, SQS_MAX_RETENTION_DAYS),
    "maxMessageSizeBytes": (1024, SQS_MAX_MESSAGE_BYTES),
    "maxBodyBytes": (1, SQS_MAX_MESSAGE_BYTES),
    "ingestTimeoutSeconds": (1, 29),  # HTTP API integrations time out after 30 s
    "redriveTimeoutSeconds": (1, LAMBDA_MAX_TIMEOUT_SECONDS),
    "functionMemoryMb": (128, 10_240),
    "powertoolsLayerVersion": (1, 10_000),
    "apiThrottlingRateLimit": (1, 10_000),
    "apiThrottlingBurstLimit": (1, 5_000),
    "ttlDays": (1, 365),
    "failureModeMaxTtlSeconds": (10, 86_400),
    "failureModeCacheSeconds": (0, 300),
    "maxRedrivesPerMessage": (1, 100),
    "redriveMaxMessagesPerSecond": (1, 1000),
    "fisExperimentDurationMinutes": (1, 720),
    "alarms.periodSeconds": (10, 86_400),
    "alarms.evaluationPeriods": (1, 100),
    "alarms.dlqVisibleThreshold": (0, 1_000_000),
    "alarms.dlqAgeSeconds": (0, 1_209_600),
    "alarms.mainQueueAgeSeconds": (0, 1_209_600),
    "alarms.mainQueueVisibleThreshold": (0, 10_000_000),
    "alarms.lambdaErrorsThreshold": (0, 1_000_000),
    "alarms.lambdaThrottlesThreshold": (0, 1_000_000),
    "alarms.quarantineThreshold": (0, 1_000_000),
}
_BOOL_KEYS = (
    "powertoolsLayerFromSsm",
    "useKmsCmk",
    "deletionProtection",
    "failureInjectionEnabled",
    "fisEnabled",
    "queryDefinitionsEnabled",
)
_OPTIONAL_INT_KEYS = ("queueVisibilitySeconds", "workerReservedConcurrency")


def environment_names(context: Mapping[str, Any]) -> list[str]:
    """The environments declared under the "ingestion" context key, in declaration order."""
    return list(_section(context).get("environments", {}))


def load_stage_config(context: Mapping[str, Any], env_name: str, **overrides: Any) -> StageConfig:
    """Build and validate one environment: defaults, then the environment's keys, then overrides.

    `context` is the whole cdk.json context (or a dict shaped like it); `overrides` use cdk.json key
    names (e.g. account="123456789012" from `-c` on the command line or a cdk.context.json).
    """
    section = _section(context)
    environments = section.get("environments", {})
    if env_name not in environments:
        raise ConfigError(
            f"{CONTEXT_KEY}.environments: no environment named {env_name!r} (known: {sorted(environments)})"
        )
    raw: dict[str, Any] = {**section.get("defaults", {}), **environments[env_name], **overrides}
    raw.setdefault("envName", env_name)
    alarms = {**section.get("defaults", {}).get("alarms", {}), **environments[env_name].get("alarms", {})}
    alarms.update(overrides.get("alarms", {}))
    raw["alarms"] = alarms
    return build_stage_config(raw, where=f"{CONTEXT_KEY}.environments.{env_name}")


def build_stage_config(raw: Mapping[str, Any], *, where: str = CONTEXT_KEY) -> StageConfig:  # noqa: PLR0912
    """Validate a flat mapping of cdk.json keys into a StageConfig, or raise ConfigError."""
    errors: list[str] = []

    def fail(key: str, rule: str) -> None:
        errors.append(f"{where}.{key}: {rule}")

    unknown = sorted(set(raw) - set(_KEYS))
    for key in unknown:
        fail(key, f"unknown key (known keys: {', '.join(sorted(_KEYS))})")
    alarms_raw = raw.get("alarms", {}) or {}
    if not isinstance(alarms_raw, Mapping):
        fail("alarms", "must be an object")
        alarms_raw = {}
    for key in sorted(set(alarms_raw) - set(_ALARM_KEYS)):
        fail(f"alarms.{key}", f"unknown key (known keys: {', '.join(sorted(_ALARM_KEYS))})")

    values: dict[str, Any] = {}
    for key, attr in _KEYS.items():
        if key in raw and key != "alarms":
            values[attr] = raw[key]
    alarm_values = {_ALARM_KEYS[k]: v for k, v in alarms_raw.items() if k in _ALARM_KEYS}

    for key, (low, high) in _INT_RANGES.items():
        source, name = (alarms_raw, key.split(".", 1)[1]) if key.startswith("alarms.") else (raw, key)
        if name not in source or (source[name] is None and key in _OPTIONAL_INT_KEYS):
            continue
        value = source[name]
        if isinstance(value, bool) or not isinstance(value, int):
            fail(key, f"must be an integer, got {value!r}")
        elif not low <= value <= high:
            fail(key, f"must be between {low} and {high}, got {value}")
    for key in _BOOL_KEYS:
        if key in raw and not isinstance(raw[key], bool):
            fail(key, f"must be true or false, got {raw[key]!r}")
    for key in ("jwtAudience", "corsAllowedOrigins"):
        if key in raw:
            items = raw[key]
            if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
                fail(key, f"must be a list of strings, got {items!r}")
            else:
                values[_KEYS[key]] = tuple(items)
    if errors:
        raise ConfigError(_report(errors))

    try:
        config = StageConfig(**values, alarms=AlarmConfig(**alarm_values))
    except TypeError as exc:  # a required key (envName, account, region) is missing
        raise ConfigError(f"{where}: {exc}") from exc
    errors.extend(f"{where}.{problem}" for problem in _rule_violations(config))
    if errors:
        raise ConfigError(_report(errors))
    return config


# One flat list of rules reads (and reviews) better than rules split across helpers.
def _rule_violations(c: StageConfig) -> list[str]:  # noqa: PLR0912, PLR0915
    problems: list[str] = []
    if not _ENV_NAME.match(c.env_name):
        problems.append(f"envName: must match {_ENV_NAME.pattern}, got {c.env_name!r}")
    if not ACCOUNT_ID.match(c.account):
        problems.append(f"account: must be a 12-digit AWS account id, got {c.account!r}")
    if not AWS_REGION.match(c.region):
        problems.append(f"region: must be an AWS region such as us-east-1, got {c.region!r}")
    if c.pipeline_account is not None and not ACCOUNT_ID.match(c.pipeline_account):
        problems.append(f"pipelineAccount: must be a 12-digit AWS account id, got {c.pipeline_account!r}")
    if not c.repo_url.startswith("https://"):
        problems.append(f"repoUrl: must be an https:// URL (runbook links), got {c.repo_url!r}")

    minimum_visibility = visibility_timeout_for(c.worker_timeout_seconds)
    if c.visibility_timeout_seconds < minimum_visibility:
        problems.append(
            f"queueVisibilitySeconds: must be >= {VISIBILITY_FACTOR} x workerTimeoutSeconds "
            f"({minimum_visibility}), got {c.visibility_timeout_seconds}"
        )
    if c.visibility_timeout_seconds > SQS_MAX_VISIBILITY_SECONDS:
        problems.append(
            f"workerTimeoutSeconds: {VISIBILITY_FACTOR} x workerTimeoutSeconds must stay within the SQS "
            f"visibility limit ({SQS_MAX_VISIBILITY_SECONDS} s)"
        )
    if c.batch_size > SQS_BATCH_SIZE_WITHOUT_WINDOW and c.max_batching_window_seconds < 1:
        problems.append(
            f"batchSize: above {SQS_BATCH_SIZE_WITHOUT_WINDOW} requires maxBatchingWindowSeconds >= 1, "
            f"got batchSize {c.batch_size} with window {c.max_batching_window_seconds}"
        )
    if c.dlq_retention_days <= c.main_queue_retention_days:
        problems.append(
            f"dlqRetentionDays: must be longer than mainQueueRetentionDays ({c.main_queue_retention_days}), "
            f"got {c.dlq_retention_days}"
        )
    if c.max_body_bytes >= c.max_message_size_bytes:
        problems.append(
            f"maxBodyBytes: must be below maxMessageSizeBytes ({c.max_message_size_bytes}) to leave room for "
            f"message attributes, got {c.max_body_bytes}"
        )
    if c.worker_reserved_concurrency is not None and c.worker_reserved_concurrency < c.worker_max_concurrency:
        problems.append(
            f"workerReservedConcurrency: must be >= workerMaxConcurrency ({c.worker_max_concurrency}) or the "
            f"event source is throttled, got {c.worker_reserved_concurrency}"
        )
    if c.architecture not in ARCHITECTURES:
        problems.append(f"architecture: must be one of {', '.join(ARCHITECTURES)}, got {c.architecture!r}")
    if c.log_retention_days not in LOG_RETENTION_DAYS:
        problems.append(
            f"logRetentionDays: must be a CloudWatch Logs retention ({LOG_RETENTION_DAYS}), "
            f"got {c.log_retention_days}"
        )
    if c.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        problems.append(f"logLevel: must be DEBUG, INFO, WARNING or ERROR, got {c.log_level!r}")
    if c.kms_alias and (not _KMS_ALIAS.match(c.kms_alias) or c.kms_alias.startswith("alias/aws/")):
        problems.append(f"kmsAlias: must look like alias/<name> and not use the reserved alias/aws/ prefix, "
                        f"got {c.kms_alias!r}")  # fmt: skip
    if c.kms_alias and not c.use_kms_cmk:
        problems.append("kmsAlias: only applies with useKmsCmk true")
    if c.alarm_email is not None and not _EMAIL.match(c.alarm_email):
        problems.append(f"alarmEmail: must be an email address, got {c.alarm_email!r}")
    if c.webhook_url is not None and not c.webhook_url.startswith("https://"):
        problems.append(f"webhookUrl: must be an https:// URL, got {c.webhook_url!r}")

    if c.auth_mode not in AUTH_MODES:
        problems.append(f"authMode: must be one of {', '.join(AUTH_MODES)}, got {c.auth_mode!r}")
    if c.auth_mode == "jwt":
        if not c.jwt_issuer or not c.jwt_issuer.startswith("https://"):
            problems.append(f"jwtIssuer: authMode jwt requires an https:// issuer URL, got {c.jwt_issuer!r}")
        if not c.jwt_audience:
            problems.append("jwtAudience: authMode jwt requires at least one audience")
    elif c.jwt_issuer or c.jwt_audience:
        problems.append(f"jwtIssuer: jwtIssuer/jwtAudience only apply with authMode jwt, not {c.auth_mode!r}")
    if c.env_name == "prod" and c.auth_mode == "none":
        problems.append("authMode: prod must authenticate callers (apiKey or jwt), got 'none'")
    for origin in c.cors_allowed_origins:
        if not _ORIGIN.match(origin):
            problems.append(
                f"corsAllowedOrigins: {origin!r} is not an allowed origin (https://host[:port], or "
                "http://localhost / http://127.0.0.1 for local work; '*' is refused)"
            )
    if c.api_throttling_burst_limit < c.api_throttling_rate_limit:
        problems.append(
            f"apiThrottlingBurstLimit: must be >= apiThrottlingRateLimit ({c.api_throttling_rate_limit}), "
            f"got {c.api_throttling_burst_limit}"
        )

    period = c.alarms.period_seconds
    if period not in (10, 30) and period % 60 != 0:
        problems.append(f"alarms.periodSeconds: must be 10, 30 or a multiple of 60, got {period}")
    if c.alarms.period_seconds * c.alarms.evaluation_periods > 86_400:
        problems.append("alarms.evaluationPeriods: periodSeconds x evaluationPeriods must not exceed one day")

    if c.fis_enabled and c.is_local:
        problems.append("fisEnabled: the local cloud has no Fault Injection Service; use the SSM switch")
    if c.fis_enabled and not c.failure_injection_enabled:
        problems.append("fisEnabled: requires failureInjectionEnabled true (prod refuses injection)")
    return problems


def _section(context: Mapping[str, Any]) -> Mapping[str, Any]:
    section = context.get(CONTEXT_KEY)
    if not isinstance(section, Mapping):
        raise ConfigError(
            f"{CONTEXT_KEY}: missing from the cdk.json context (expected defaults/environments)"
        )
    return cast(Mapping[str, Any], section)


def _report(errors: list[str]) -> str:
    return "invalid stage configuration:\n  - " + "\n  - ".join(errors)
