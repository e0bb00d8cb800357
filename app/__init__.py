"""The ingestion stage as a CDK app (stacks, components, constructs, configuration).

What other packages may use (pipeline/ imports app only from here): the stage, its configuration
and the configuration base that other settings reuse.
"""

from app.config import (
    ALLOW_EXAMPLE_JWT_ISSUER,
    EXAMPLE_JWT_ISSUER,
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
from app.stage import IngestionStage, PublicParameter, public_parameters

__all__ = [
    "ALLOW_EXAMPLE_JWT_ISSUER",
    "CDK_JSON",
    "EXAMPLE_JWT_ISSUER",
    "AccountId",
    "AwsRegion",
    "ConfigError",
    "ConfigModel",
    "HttpsUrl",
    "IngestionStage",
    "PublicParameter",
    "StageConfig",
    "Violation",
    "add_checks",
    "bounded",
    "build_app",
    "context_section",
    "flag",
    "load_stage_config",
    "matching",
    "public_parameters",
    "rule_group",
    "stage_context",
    "suppress",
    "validate_config",
]
