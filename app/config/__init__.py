"""Configuration: the typed models of a stage (stage.py) on a base (base.py) and field types
(fields.py) shared with pipeline/, and the generator of the configuration tables (doc.py)."""

from app.config.base import ConfigError, ConfigModel, Violation, rule_group, validate_config
from app.config.fields import (
    ACCOUNT_ID,
    AWS_REGION,
    LOG_RETENTION_DAYS,
    AccountId,
    AwsRegion,
    HttpsUrl,
    bounded,
    flag,
    matching,
)
from app.config.stage import (
    ALLOW_EXAMPLE_JWT_ISSUER,
    CONTEXT_KEY,
    EXAMPLE_JWT_ISSUER,
    VISIBILITY_FACTOR,
    AlarmSettings,
    StageConfig,
    build_stage_config,
    environment_names,
    load_stage_config,
    visibility_timeout_for,
)

__all__ = [
    "ACCOUNT_ID",
    "ALLOW_EXAMPLE_JWT_ISSUER",
    "AWS_REGION",
    "CONTEXT_KEY",
    "EXAMPLE_JWT_ISSUER",
    "LOG_RETENTION_DAYS",
    "VISIBILITY_FACTOR",
    "AccountId",
    "AlarmSettings",
    "AwsRegion",
    "ConfigError",
    "ConfigModel",
    "HttpsUrl",
    "StageConfig",
    "Violation",
    "bounded",
    "build_stage_config",
    "environment_names",
    "flag",
    "load_stage_config",
    "matching",
    "rule_group",
    "validate_config",
    "visibility_timeout_for",
]
