"""The ingestion stage as a CDK app (stacks, components, constructs, configuration).

What other packages may use (pipeline/ imports app only from here): the stage, its configuration
and the configuration base that other settings reuse.
"""

from app.config import (
    AccountId,
    AwsRegion,
    ConfigError,
    ConfigModel,
    HttpsUrl,
    StageConfig,
    Violation,
    bounded,
    flag,
    load_stage_config,
    matching,
    rule_group,
    validate_config,
)
from app.constructs.nag import suppress
from app.main import CDK_JSON, add_checks, build_app, context_section, stage_context
from app.stage import IngestionStage

__all__ = [
    "CDK_JSON",
    "AccountId",
    "AwsRegion",
    "ConfigError",
    "ConfigModel",
    "HttpsUrl",
    "IngestionStage",
    "StageConfig",
    "Violation",
    "add_checks",
    "bounded",
    "build_app",
    "context_section",
    "flag",
    "load_stage_config",
    "matching",
    "rule_group",
    "stage_context",
    "suppress",
    "validate_config",
]
