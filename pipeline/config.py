"""The delivery pipeline's settings: cdk.json context key "pipeline", validated once at synth time,
on the same configuration base as the stage (app's ConfigModel).

Real account ids stay out of the repository: cdk.json holds placeholders, and the top-level context
keys in OVERRIDE_KEYS (from `-c` or a git-ignored cdk.context.json) replace them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, StrictStr, field_validator

from app import (
    AccountId,
    AwsRegion,
    ConfigError,
    ConfigModel,
    HttpsUrl,
    StageConfig,
    Violation,
    bounded,
    load_stage_config,
    matching,
    validate_config,
)

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
    # The JWT issuer and audiences a stage in authMode jwt trusts (prod): the real identity provider
    # stays out of git like the accounts, and the prod smoke test's token must come from it.
    "devJwtIssuer": "devJwtIssuer",
    "devJwtAudience": "devJwtAudience",
    "prodJwtIssuer": "prodJwtIssuer",
    "prodJwtAudience": "prodJwtAudience",
    "stageSettings": "stageSettings",
}
# The environments the pipeline deploys (keys of cdk.json's "ingestion.environments").
PIPELINE_ENVIRONMENTS: tuple[Literal["dev", "prod"], ...] = ("dev", "prod")
# CodeBuild accepts build timeouts from 5 to 480 minutes.
CODEBUILD_TIMEOUT_MINUTES = (5, 480)

ConnectionArn = Annotated[
    StrictStr,
    matching(
        r"^arn:aws[a-z-]*:(codeconnections|codestar-connections):[a-z0-9-]+:\d{12}:connection/[\w-]+$",
        "must be a CodeConnections ARN",
    ),
]
Repository = Annotated[StrictStr, matching(r"^[\w.-]+/[\w./-]+$", "must be owner/name")]
BranchName = Annotated[StrictStr, matching(r"^\S+$", "must be a branch name")]
PipelineName = Annotated[StrictStr, matching(r"^[A-Za-z0-9.@_-]{1,100}$", "must be a pipeline name")]
ParameterName = Annotated[
    StrictStr, matching(r"^/[\w./-]+$", "must be an SSM parameter name starting with /")
]
SecretName = Annotated[StrictStr, matching(r"^[\w/+=.@-]{1,512}$", "must be a Secrets Manager secret name")]
Timespan = Annotated[StrictStr, matching(r"^\d+[smh]$", "must look like 90s, 5m or 1h")]
Audience = Annotated[StrictStr, Field(min_length=1)]


class LoadTestSettings(ConfigModel):
    """The dev load test (`python -m loadtest`): Locust users and the gate's thresholds."""

    users: int = bounded(10, 1, 1000, "Locust users")
    spawn_rate: float = bounded(5.0, 0.1, 1000, "users started per second")
    run_time: Timespan = Field(default="60s", description="how long Locust runs")
    rps_per_user: float = bounded(2.0, 0, 1000, "requests per second of each user")
    duplicate_pool_size: int = bounded(20, 1, 10_000, "payloads the duplicate-submit users resend")
    max_failure_ratio: float = bounded(0.01, 0, 1, "gate: largest share of failed requests")
    max_p95_ms: float = bounded(1500.0, 1, 60_000, "gate: largest p95 latency (ms)")
    min_requests: int = bounded(100, 1, 10_000_000, "gate: fewest requests for a meaningful run")
    verify_timeout_seconds: int = bounded(180, 1, 3600, "how long the gate waits for every record")


class PipelineConfig(ConfigModel):
    """Where the pipeline lives, what it watches, and how its post-deploy checks run."""

    account: AccountId = Field(description="the pipeline account (override: `pipelineAccount`)")
    region: AwsRegion = Field(description="the pipeline's region (override: `pipelineRegion`)")
    connection_arn: ConnectionArn = Field(description="the CodeConnections connection to the repository")
    repository: Repository = Field(description="`owner/name` of the watched repository")
    branch: BranchName = Field(default="main", description="the branch whose pushes trigger the pipeline")
    pipeline_name: PipelineName = Field(default="ingestion-lab", description="the CodePipeline name")
    context_parameter_name: ParameterName = Field(
        default="/ingestion-lab/pipeline/cdk-context",
        description="SSM String parameter (pipeline account) whose JSON the synth step writes to "
        "cdk.context.json: the real account ids and anything else kept out of the repository",
    )
    gameday_in_prod: bool = Field(
        default=False,
        strict=True,
        description="also run the poison-pill gameday on prod (prod must then allow failure injection)",
    )
    jwt_token_secret_name: SecretName = Field(
        default="ingestion-lab/pipeline/smoke-jwt",
        description="pipeline-account secret holding a bearer token for the smoke test (`authMode` jwt)",
    )
    step_timeout_minutes: int = bounded(
        30, *CODEBUILD_TIMEOUT_MINUTES, "CodeBuild timeout of each post-deploy step"
    )
    dev_account: AccountId | None = Field(
        default=None, description="the dev stage's account (override of cdk.json)"
    )
    prod_account: AccountId | None = Field(
        default=None, description="the prod stage's account (override of cdk.json)"
    )
    dev_jwt_issuer: HttpsUrl | None = Field(
        default=None, description="the dev stage's `jwtIssuer` (override of cdk.json; authMode jwt)"
    )
    dev_jwt_audience: tuple[Audience, ...] | None = Field(
        default=None,
        description="the dev stage's `jwtAudience`: a list, or comma-separated from `-c` "
        "(override of cdk.json)",
    )
    prod_jwt_issuer: HttpsUrl | None = Field(
        default=None,
        description="the prod stage's `jwtIssuer`, the issuer of the prod smoke test's token (override of "
        "cdk.json, whose value is an example that prod refuses)",
    )
    prod_jwt_audience: tuple[Audience, ...] | None = Field(
        default=None,
        description="the prod stage's `jwtAudience`: a list, or comma-separated from `-c` "
        "(override of cdk.json)",
    )
    stage_settings: dict[Literal["dev", "prod"], dict[str, Any]] = Field(
        default_factory=dict,
        description="per environment (`dev`, `prod`), stage keys applied over cdk.json to the stages the "
        "pipeline deploys (validated as the stage's own), e.g. from the SSM context parameter",
    )
    # Frozen, so one default instance is safe to share.
    load: LoadTestSettings = Field(default=LoadTestSettings(), description="the dev load test")

    @field_validator("gameday_in_prod", mode="before")
    @classmethod
    def _boolean_text(cls, value: Any) -> Any:
        # `cdk -c gamedayInProd=true` passes the string "true".
        return {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value

    @field_validator("dev_jwt_audience", "prod_jwt_audience", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        # `cdk -c prodJwtAudience=a,b` passes one string; cdk.context.json passes a list.
        return tuple(part.strip() for part in value.split(",")) if isinstance(value, str) else value

    @property
    def stage_overrides(self) -> dict[str, dict[str, Any]]:
        """Per-environment overrides for load_stage_config (cdk.json key names): stageSettings, then
        the accounts, the JWT issuers and audiences, and the pipeline account."""
        overrides: dict[str, dict[str, Any]] = {
            env: dict(self.stage_settings.get(env, {})) for env in PIPELINE_ENVIRONMENTS
        }
        for env_name, account, issuer, audience in (
            ("dev", self.dev_account, self.dev_jwt_issuer, self.dev_jwt_audience),
            ("prod", self.prod_account, self.prod_jwt_issuer, self.prod_jwt_audience),
        ):
            values = overrides[env_name]
            if account:
                values["account"] = account
            if issuer:
                values["jwtIssuer"] = issuer
            if audience is not None:
                values["jwtAudience"] = list(audience)
        for values in overrides.values():
            values["pipelineAccount"] = self.account
        return overrides


class PipelineConfigError(ConfigError):
    """The "pipeline" context is invalid; the message lists every broken rule."""


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


def build_pipeline_config(raw: Mapping[str, Any]) -> PipelineConfig:
    """Validate a mapping of cdk.json keys into a PipelineConfig, or raise PipelineConfigError."""
    try:
        return validate_config(PipelineConfig, raw, where=CONTEXT_KEY, title="invalid pipeline configuration")
    except ConfigError as error:
        raise PipelineConfigError(str(error)) from None


def stage_violations(config: PipelineConfig, *, dev: StageConfig, prod: StageConfig) -> Iterator[Violation]:
    """The pipeline's rules on the stages it deploys."""
    if not dev.event_audit:
        yield Violation(
            "stageSettings.dev.eventAudit",
            "dev deploys no event audit queue (eventAudit false, in ingestion.environments.dev or "
            "here), and dev's load test gate and poison-pill gameday count IngestionSuccess events on it",
        )
    if config.gameday_in_prod and not prod.failure_injection_enabled:
        yield Violation(
            "gamedayInProd",
            "the prod stage refuses failure injection (failureInjectionEnabled false), so its gameday "
            "could not inject the poison pill",
        )
    if config.gameday_in_prod and not prod.event_audit:
        yield Violation(
            "gamedayInProd",
            "the prod stage deploys no event audit queue (eventAudit false), and the gameday counts "
            "IngestionSuccess events on it (set eventAudit and successTopic true in prod)",
        )


def check_stages(config: PipelineConfig, *, dev: StageConfig, prod: StageConfig) -> None:
    """Raise PipelineConfigError listing every broken rule of the pipeline on its stages."""
    problems = [f"{CONTEXT_KEY}.{v.key}: {v.rule}" for v in stage_violations(config, dev=dev, prod=prod)]
    if problems:
        raise PipelineConfigError("invalid pipeline configuration:\n  - " + "\n  - ".join(problems))


def pipeline_stage_configs(context: Mapping[str, Any]) -> tuple[PipelineConfig, StageConfig, StageConfig]:
    """The pipeline's settings and the dev and prod stages it deploys, validated (the stack and the
    synth step's pre-flight read them the same way)."""
    config = load_pipeline_config(context)
    overrides = config.stage_overrides
    dev = load_stage_config(context, "dev", **overrides["dev"])
    prod = load_stage_config(context, "prod", **overrides["prod"])
    check_stages(config, dev=dev, prod=prod)
    return config, dev, prod
