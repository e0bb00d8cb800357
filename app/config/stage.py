"""The stage configuration: one typed model per environment, built from cdk.json context.

The model holds every key's type, bounds, default and meaning; the defaults are the secure ones
(prod-like), so cdk.json lists per environment only what it relaxes or sets. Validated once, at
synth time; an error names the environment, the key and the rule.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal, cast

from pydantic import Field

from app.config.base import ConfigError, ConfigModel, Violation, rule_group, validate_config
from app.config.fields import (
    AccountId,
    AwsRegion,
    CorsOrigin,
    Email,
    EnvName,
    HttpsUrl,
    KmsAlias,
    LogRetentionDays,
    NonEmpty,
    bounded,
    flag,
)
from functions.common import names

CONTEXT_KEY = "ingestion"
"""The cdk.json context key holding {"environments": {"<envName>": {...}}}."""

EXAMPLE_JWT_ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE"
"""The issuer cdk.json shows for prod: an example, not an identity provider. A prod stage built
with it would answer 401 to every real token, so it is refused at synth (IngestionStage) unless the
context sets ALLOW_EXAMPLE_JWT_ISSUER (tests, and synthesizing without the real context)."""
ALLOW_EXAMPLE_JWT_ISSUER = "allowExampleJwtIssuer"

VISIBILITY_FACTOR = 6
SQS_MAX_VISIBILITY_SECONDS = 43_200
SQS_MAX_RETENTION_DAYS = 14
SQS_MAX_MESSAGE_BYTES = 1_048_576
LAMBDA_MAX_TIMEOUT_SECONDS = 900
SQS_BATCH_SIZE_WITHOUT_WINDOW = 10
ONE_DAY_SECONDS = 86_400


def visibility_timeout_for(*, function_timeout_seconds: int, batching_window_seconds: int) -> int:
    """The smallest queue visibility timeout AWS advises for an SQS event source: six times the
    function timeout plus the batching window, so Lambda can retry a throttled batch before the
    messages reappear (AWS Lambda Developer Guide, "Using Lambda with Amazon SQS": configuring a
    queue to use with Lambda)."""
    return VISIBILITY_FACTOR * function_timeout_seconds + batching_window_seconds


class AlarmSettings(ConfigModel):
    """Thresholds and periods of the stage's alarms (cdk.json key "alarms")."""

    period_seconds: int = bounded(60, 10, ONE_DAY_SECONDS, "alarm period: 10, 30 or a multiple of 60")
    evaluation_periods: int = bounded(
        5, 1, 100, "periods (all must breach) before ALARM; periodSeconds x evaluationPeriods <= one day"
    )
    dlq_visible_threshold: int = bounded(
        0, 0, 1_000_000, "DLQ and relay on-failure queue depth alarms: visible messages > threshold"
    )
    dlq_age_seconds: int = bounded(300, 0, 1_209_600, "DLQ age-of-oldest alarm")
    main_queue_age_seconds: int = bounded(300, 0, 1_209_600, "main queue age-of-oldest alarm")
    main_queue_visible_threshold: int = bounded(1000, 0, 10_000_000, "main queue backlog alarm")
    lambda_errors_threshold: int = bounded(0, 0, 1_000_000, "worker, ingest and relay errors alarms")
    lambda_throttles_threshold: int = bounded(0, 0, 1_000_000, "worker and ingest throttles alarms")
    quarantine_threshold: int = bounded(
        0, 0, 1_000_000, f"`{names.MetricName.REDRIVE_QUARANTINED.value}` alarm (quarantined messages)"
    )
    idempotency_conflict_threshold: int = bounded(
        0,
        0,
        1_000_000,
        f"`{names.MetricName.IDEMPOTENCY_CONFLICTS.value}` alarm (keys reused with another payload)",
    )
    # DynamoDB Streams keep a record 24 hours; the relay's mapping gives a record up after 6.
    relay_iterator_age_seconds: int = bounded(
        300, 1, ONE_DAY_SECONDS, "relay iterator-age alarm: how far events may lag their records"
    )


class StageConfig(ConfigModel):
    """Everything that differs between environments; read by app/ and, through it, by pipeline/."""

    # Identity.
    env_name: EnvName = Field(
        description="the environment's key under `environments`; every physical name is prefixed "
        "`ingestion-<envName>`"
    )
    account: AccountId = Field(description="the stage's account (override: `-c account=...`)")
    region: AwsRegion = Field(description="the stage's region (override: `-c region=...`)")
    repo_url: HttpsUrl = Field(
        default="https://github.com/example/ingestion-lab",
        description="alarm descriptions link `<repoUrl>/blob/main/ops/runbooks/<runbook>.md`",
    )
    # Queues and the worker's event source.
    max_receive_count: int = bounded(5, 1, 1000, "receives before a message goes to the DLQ")
    batch_size: int = bounded(
        10,
        1,
        10_000,
        f"worker batch size; above {SQS_BATCH_SIZE_WITHOUT_WINDOW} needs a batching window >= 1",
    )
    # Lambda API Reference, CreateEventSourceMapping: MaximumBatchingWindowInSeconds 0..300, and at
    # least 1 when BatchSize exceeds 10 (SQS standard queues); ScalingConfig.MaximumConcurrency 2..1000.
    max_batching_window_seconds: int = bounded(2, 0, 300, "worker batching window")
    worker_timeout_seconds: int = bounded(30, 1, LAMBDA_MAX_TIMEOUT_SECONDS, "worker function timeout")
    queue_visibility_seconds: int | None = bounded(
        None,
        0,
        SQS_MAX_VISIBILITY_SECONDS,
        f"main queue visibility timeout; none: {VISIBILITY_FACTOR} x `workerTimeoutSeconds` + "
        "`maxBatchingWindowSeconds` (AWS guidance), the least it may be",
    )
    worker_max_concurrency: int = bounded(5, 2, 1000, "maximum concurrency of the worker's event source")
    worker_reserved_concurrency: int | None = bounded(
        None, 1, 10_000, "reserved concurrency of the worker; >= `workerMaxConcurrency`"
    )
    main_queue_retention_days: int = bounded(4, 1, SQS_MAX_RETENTION_DAYS, "main queue retention")
    dlq_retention_days: int = bounded(
        14, 1, SQS_MAX_RETENTION_DAYS, "DLQ retention; longer than `mainQueueRetentionDays`"
    )
    max_message_size_bytes: int = bounded(
        262_144, 1024, SQS_MAX_MESSAGE_BYTES, "maximum message size of the main queue, DLQ and quarantine"
    )
    max_body_bytes: int = bounded(
        65_536, 1, SQS_MAX_MESSAGE_BYTES, "largest request body ingest accepts; below `maxMessageSizeBytes`"
    )
    # Functions.
    ingest_timeout_seconds: int = bounded(
        10, 1, 29, "ingest function timeout (the HTTP API integration timeout is 30 s)"
    )
    redrive_timeout_seconds: int = bounded(
        300, 1, LAMBDA_MAX_TIMEOUT_SECONDS, "redrive function timeout; also the DLQ's visibility timeout"
    )
    function_memory_mb: int = bounded(256, 128, 10_240, "memory of every function")
    architecture: Literal["x86_64", "arm64"] = Field(
        default="arm64", description="every function's architecture (the Powertools and FIS layers follow it)"
    )
    powertools_layer_from_ssm: bool = flag(
        True,
        "resolve the Powertools layer at deploy time from the public parameter of the "
        "`aws-lambda-powertools` release pinned in requirements-runtime.txt",
    )
    powertools_layer_version: int = bounded(
        36,
        1,
        10_000,
        "layer number of `AWSLambdaPowertoolsPythonV3-python313-<arch>`, used only when "
        "`powertoolsLayerFromSsm` is false (the local cloud, which ignores layers)",
    )
    log_retention_days: LogRetentionDays = Field(
        default=30, description="retention of the function and access log groups"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO",
        description="`POWERTOOLS_LOG_LEVEL` of every function; above INFO the per-record lines go, and "
        "with them the `ProcessedTrue` metric filter and the saved queries that read them",
    )
    lambda_system_log_level: Literal["DEBUG", "INFO", "WARN"] = Field(
        default="INFO",
        description="`SystemLogLevel` of every function (JSON log format); WARN drops the START, END and "
        "REPORT lines",
    )
    tracing_enabled: bool = flag(
        True,
        "X-Ray: Lambda active tracing and the Powertools Tracer; false: no TracingConfig, and "
        "`POWERTOOLS_TRACE_DISABLED` so the functions never load the X-Ray SDK",
    )
    event_audit: bool = flag(
        True,
        "the event-log function and the event audit queue (what the drills and `lab verify "
        "--count-events` count events on); false: the rules send to the SNS topics only",
    )
    success_topic: bool = flag(
        True,
        "IngestionSuccess events also published to an SNS topic (`<prefix>-success`); false: no "
        "topic, the events stay on the bus for rules of their own (IngestionFailure keeps its topic)",
    )
    # Encryption.
    use_kms_cmk: bool = flag(
        True, "one customer-managed key with rotation encrypts queues, topics and tables"
    )
    kms_alias: KmsAlias | None = Field(
        default=None,
        description="alias of that key (none: `alias/ingestion-<envName>`); only with `useKmsCmk`",
    )
    # Alarm notifications.
    alarm_email: Email | None = Field(
        default=None, description="email subscribed to the alarm topic (with a DLQ)"
    )
    webhook_url: HttpsUrl | None = Field(
        default=None, description="https endpoint subscribed to the alarm topic"
    )
    # Frozen, so one default instance is safe to share.
    alarms: AlarmSettings = Field(default=AlarmSettings(), description="alarm thresholds and periods")
    # API.
    auth_mode: Literal["none", "apiKey", "jwt"] = Field(
        default="apiKey",
        description="apiKey: a Lambda authorizer on `x-api-key`; jwt: the JWT authorizer; prod refuses none",
    )
    jwt_issuer: HttpsUrl | None = Field(
        default=None, description="JWT issuer; required with `authMode` jwt only"
    )
    jwt_audience: tuple[NonEmpty, ...] = Field(
        default=(), description="JWT audiences; >= 1 with `authMode` jwt only"
    )
    cors_allowed_origins: tuple[CorsOrigin, ...] = Field(
        default=(),
        description="browser origins allowed to call the API (none: no CORS configuration, so browsers "
        "refuse cross-origin calls)",
    )
    api_throttling_rate_limit: int = bounded(50, 1, 10_000, "`$default` stage rate limit (requests/s)")
    api_throttling_burst_limit: int = bounded(
        100, 1, 5_000, "`$default` stage burst limit; >= `apiThrottlingRateLimit`"
    )
    # State.
    ttl_days: int = bounded(7, 1, 365, "`expiresAt` of state records and redrive jobs")
    deletion_protection: bool = flag(
        True, "table deletion protection; tables, log groups and the key retained on stack deletion"
    )
    # Break/fix guardrails and redrive storm protection.
    failure_injection_enabled: bool = flag(
        False, "handlers honour `/ingestion/failure_mode`, and the checks role may write it"
    )
    failure_mode_max_ttl_seconds: int = bounded(
        900, 10, ONE_DAY_SECONDS, "the longest an injected failure mode stays on"
    )
    failure_mode_cache_seconds: int = bounded(5, 0, 300, "how long handlers cache the failure mode")
    max_redrives_per_message: int = bounded(
        3, 1, 100, "a message redriven this many times goes to the quarantine queue"
    )
    redrive_max_messages_per_second: int = bounded(50, 1, 1000, "redrive pacing")
    fis_enabled: bool = flag(
        False,
        "FIS experiment templates and the FIS extension on the worker; needs `failureInjectionEnabled`; "
        "refused in local",
    )
    fis_experiment_duration_minutes: int = bounded(5, 1, 720, "duration of each FIS experiment")
    # AWS::Logs::QueryDefinition: the local cloud's engine cannot create it (local turns it off).
    query_definitions_enabled: bool = flag(
        True, "deploy the Logs Insights queries of `ops/queries/cloudwatch-insights/*.txt`"
    )
    pipeline_account: AccountId | None = Field(
        default=None,
        description="set by the pipeline: the stage deploys the `ingestion-<envName>-pipeline-checks` "
        "role trusted by that account",
    )

    @property
    def prefix(self) -> str:
        """Prefix of every physical name in the stage (one stage per account and region)."""
        return f"{names.RESOURCE_PREFIX}-{self.env_name}"

    @property
    def visibility_timeout_seconds(self) -> int:
        if self.queue_visibility_seconds is not None:
            return self.queue_visibility_seconds
        return self.minimum_visibility_seconds

    @property
    def minimum_visibility_seconds(self) -> int:
        # Within SQS's 12-hour limit by the fields' bounds: 6 x 900 s + 300 s = 5700 s.
        return visibility_timeout_for(
            function_timeout_seconds=self.worker_timeout_seconds,
            batching_window_seconds=self.max_batching_window_seconds,
        )

    @property
    def resolved_kms_alias(self) -> str:
        return self.kms_alias or f"alias/{self.prefix}"

    @property
    def logs_record_outcomes(self) -> bool:
        """The functions log their INFO lines (the worker's "record processed" and "duplicate"
        lines, the redrive job's progress): what the ProcessedTrue metric filter and most saved
        queries read."""
        return self.log_level in ("DEBUG", "INFO")

    @property
    def is_local(self) -> bool:
        return self.env_name == "local"

    @property
    def trusts_example_issuer(self) -> bool:
        """A prod stage whose JWT issuer is the example of cdk.json (see EXAMPLE_JWT_ISSUER)."""
        return self.env_name == "prod" and self.jwt_issuer == EXAMPLE_JWT_ISSUER

    @property
    def runbooks_url(self) -> str:
        """Where the runbooks that alarm descriptions link live (<runbooks_url>/<runbook>.md)."""
        return f"{self.repo_url.rstrip('/')}/blob/main/ops/runbooks"

    # --- Cross-field rules, one group per concern ----------------------------------------------

    @rule_group
    def _queue_rules(self) -> Iterator[Violation]:
        minimum = self.minimum_visibility_seconds
        if self.visibility_timeout_seconds < minimum:
            yield Violation(
                "queueVisibilitySeconds",
                f"must be >= {VISIBILITY_FACTOR} x workerTimeoutSeconds + maxBatchingWindowSeconds "
                f"({minimum}), got {self.visibility_timeout_seconds}",
            )
        if self.batch_size > SQS_BATCH_SIZE_WITHOUT_WINDOW and self.max_batching_window_seconds < 1:
            yield Violation(
                "batchSize",
                f"above {SQS_BATCH_SIZE_WITHOUT_WINDOW} requires maxBatchingWindowSeconds >= 1, "
                f"got batchSize {self.batch_size} with window {self.max_batching_window_seconds}",
            )
        if self.dlq_retention_days <= self.main_queue_retention_days:
            yield Violation(
                "dlqRetentionDays",
                f"must be longer than mainQueueRetentionDays ({self.main_queue_retention_days}), "
                f"got {self.dlq_retention_days}",
            )
        if self.max_body_bytes >= self.max_message_size_bytes:
            yield Violation(
                "maxBodyBytes",
                f"must be below maxMessageSizeBytes ({self.max_message_size_bytes}) to leave room for "
                f"message attributes, got {self.max_body_bytes}",
            )
        reserved = self.worker_reserved_concurrency
        if reserved is not None and reserved < self.worker_max_concurrency:
            yield Violation(
                "workerReservedConcurrency",
                f"must be >= workerMaxConcurrency ({self.worker_max_concurrency}) or the event source is "
                f"throttled, got {reserved}",
            )

    @rule_group
    def _encryption_rules(self) -> Iterator[Violation]:
        if self.kms_alias and not self.use_kms_cmk:
            yield Violation("kmsAlias", "only applies with useKmsCmk true")

    @rule_group
    def _api_rules(self) -> Iterator[Violation]:
        if self.auth_mode == "jwt":
            if not self.jwt_issuer:
                yield Violation(
                    "jwtIssuer", f"authMode jwt requires an https:// issuer URL, got {self.jwt_issuer!r}"
                )
            if not self.jwt_audience:
                yield Violation("jwtAudience", "authMode jwt requires at least one audience")
        elif self.jwt_issuer or self.jwt_audience:
            yield Violation(
                "jwtIssuer", f"jwtIssuer/jwtAudience only apply with authMode jwt, not {self.auth_mode!r}"
            )
        if self.env_name == "prod" and self.auth_mode == "none":
            yield Violation("authMode", "prod must authenticate callers (apiKey or jwt), got 'none'")
        if self.api_throttling_burst_limit < self.api_throttling_rate_limit:
            yield Violation(
                "apiThrottlingBurstLimit",
                f"must be >= apiThrottlingRateLimit ({self.api_throttling_rate_limit}), "
                f"got {self.api_throttling_burst_limit}",
            )

    @rule_group
    def _alarm_rules(self) -> Iterator[Violation]:
        period = self.alarms.period_seconds
        # CloudWatch alarms take 10 s, 30 s or a multiple of 60 s periods.
        if period not in (10, 30) and period % 60 != 0:
            yield Violation("alarms.periodSeconds", f"must be 10, 30 or a multiple of 60, got {period}")
        if period * self.alarms.evaluation_periods > ONE_DAY_SECONDS:
            yield Violation(
                "alarms.evaluationPeriods", "periodSeconds x evaluationPeriods must not exceed one day"
            )

    @rule_group
    def _event_rules(self) -> Iterator[Violation]:
        if self.event_audit and not self.success_topic:
            yield Violation(
                "successTopic", "false requires eventAudit false: the audit queue reads the success topic"
            )

    @rule_group
    def _fis_rules(self) -> Iterator[Violation]:
        if self.fis_enabled and self.is_local:
            yield Violation(
                "fisEnabled", "the local cloud has no Fault Injection Service; use the SSM switch"
            )
        if self.fis_enabled and not self.failure_injection_enabled:
            yield Violation("fisEnabled", "requires failureInjectionEnabled true (prod refuses injection)")


def environment_names(context: Mapping[str, Any]) -> list[str]:
    """The environments declared under the "ingestion" context key, in declaration order."""
    return list(_section(context).get("environments", {}))


def load_stage_config(context: Mapping[str, Any], env_name: str, **overrides: Any) -> StageConfig:
    """Build and validate one environment: the model's defaults, then the environment's keys, then
    `overrides` (cdk.json key names, e.g. account="123456789012" from `-c` or cdk.context.json).

    `context` is the whole cdk.json context (or a dict shaped like it).
    """
    environments = _section(context).get("environments", {})
    if env_name not in environments:
        raise ConfigError(
            f"{CONTEXT_KEY}.environments: no environment named {env_name!r} (known: {sorted(environments)})"
        )
    declared: Mapping[str, Any] = environments[env_name]
    raw: dict[str, Any] = {"envName": env_name, **declared, **overrides}
    if isinstance(declared.get("alarms"), Mapping) and isinstance(overrides.get("alarms"), Mapping):
        raw["alarms"] = {**declared["alarms"], **overrides["alarms"]}
    return build_stage_config(raw, where=f"{CONTEXT_KEY}.environments.{env_name}")


def build_stage_config(raw: Mapping[str, Any], *, where: str = CONTEXT_KEY) -> StageConfig:
    """Validate a mapping of cdk.json keys into a StageConfig, or raise ConfigError."""
    return validate_config(StageConfig, raw, where=where, title="invalid stage configuration")


def _section(context: Mapping[str, Any]) -> Mapping[str, Any]:
    section = context.get(CONTEXT_KEY)
    if not isinstance(section, Mapping):
        raise ConfigError(f"{CONTEXT_KEY}: missing from the cdk.json context (expected environments)")
    unknown = sorted(set(section) - {"environments"})
    if unknown:
        raise ConfigError(
            f"{CONTEXT_KEY}: unknown key(s) {unknown}; defaults live in the model (app/config/stage.py), "
            "and each environment lists only what it sets, under environments"
        )
    return cast(Mapping[str, Any], section)
