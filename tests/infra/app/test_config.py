"""Config validation: cdk.json environments load, and every invalid combination fails with its key."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.config import ConfigError, build_stage_config, environment_names, load_stage_config
from app.main import CDK_JSON

CONTEXT: dict[str, Any] = json.loads(CDK_JSON.read_text())["context"]
BASE = {"envName": "dev", "account": "111111111111", "region": "us-east-1"}


def test_cdk_json_declares_local_dev_and_prod() -> None:
    assert environment_names(CONTEXT) == ["local", "dev", "prod"]


def test_local_environment_is_tuned_for_minute_long_drills() -> None:
    local = load_stage_config(CONTEXT, "local")
    assert local.worker_timeout_seconds == 3
    assert local.visibility_timeout_seconds == 18
    # A poison message is dead-lettered after maxReceiveCount visibility timeouts.
    assert local.max_receive_count * local.visibility_timeout_seconds <= 60
    assert local.alarms.period_seconds == 10
    assert not local.use_kms_cmk
    assert not local.deletion_protection
    assert local.log_retention_days == 1


def test_prod_refuses_injection_and_protects_data() -> None:
    prod = load_stage_config(CONTEXT, "prod")
    assert not prod.failure_injection_enabled
    assert not prod.fis_enabled
    assert prod.deletion_protection
    assert prod.use_kms_cmk
    assert prod.auth_mode == "jwt"


def test_visibility_defaults_to_six_times_the_worker_timeout() -> None:
    config = build_stage_config({**BASE, "workerTimeoutSeconds": 45})
    assert config.visibility_timeout_seconds == 270


def test_overrides_replace_account_and_region() -> None:
    config = load_stage_config(CONTEXT, "dev", account="123456789012", region="eu-west-1")
    assert (config.account, config.region) == ("123456789012", "eu-west-1")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"queueVisibilitySeconds": 100, "workerTimeoutSeconds": 30},
            "queueVisibilitySeconds: must be >= 6 x",
        ),
        (
            {"batchSize": 50, "maxBatchingWindowSeconds": 0},
            "batchSize: above 10 requires maxBatchingWindowSeconds",
        ),
        ({"authMode": "basic"}, "authMode: must be one of none, apiKey, jwt"),
        ({"authMode": "jwt", "jwtAudience": ["a"]}, "jwtIssuer: authMode jwt requires an https:// issuer"),
        (
            {"authMode": "jwt", "jwtIssuer": "https://issuer.example.com"},
            "jwtAudience: authMode jwt requires",
        ),
        ({"jwtIssuer": "https://issuer.example.com"}, "jwtIssuer: jwtIssuer/jwtAudience only apply"),
        ({"envName": "prod", "authMode": "none"}, "authMode: prod must authenticate callers"),
        ({"dlqRetentionDays": 4, "mainQueueRetentionDays": 4}, "dlqRetentionDays: must be longer than"),
        ({"corsAllowedOrigins": ["*"]}, "corsAllowedOrigins: '*' is not an allowed origin"),
        (
            {"corsAllowedOrigins": ["http://evil.example.com"]},
            "corsAllowedOrigins: 'http://evil.example.com'",
        ),
        ({"alarms": {"periodSeconds": 45}}, "alarms.periodSeconds: must be 10, 30 or a multiple of 60"),
        ({"alarms": {"bogus": 1}}, "alarms.bogus: unknown key"),
        ({"maxReceiveCount": 0}, "maxReceiveCount: must be between 1 and 1000"),
        ({"batchSize": "10"}, "batchSize: must be an integer"),
        ({"useKmsCmk": "yes"}, "useKmsCmk: must be true or false"),
        ({"kmsAlias": "alias/aws/sqs", "useKmsCmk": True}, "kmsAlias: must look like alias/<name>"),
        ({"kmsAlias": "alias/mine"}, "kmsAlias: only applies with useKmsCmk true"),
        ({"webhookUrl": "http://hooks.example.com"}, "webhookUrl: must be an https:// URL"),
        ({"alarmEmail": "not-an-email"}, "alarmEmail: must be an email address"),
        ({"logRetentionDays": 2}, "logRetentionDays: must be a CloudWatch Logs retention"),
        ({"account": "12345"}, "account: must be a 12-digit AWS account id"),
        ({"pipelineAccount": "abc"}, "pipelineAccount: must be a 12-digit AWS account id"),
        (
            {"fisEnabled": True, "failureInjectionEnabled": False},
            "fisEnabled: requires failureInjectionEnabled",
        ),
        (
            {"envName": "local", "fisEnabled": True},
            "fisEnabled: the local cloud has no Fault Injection Service",
        ),
        (
            {"workerReservedConcurrency": 3, "workerMaxConcurrency": 5},
            "workerReservedConcurrency: must be >=",
        ),
        ({"maxBodyBytes": 262144, "maxMessageSizeBytes": 262144}, "maxBodyBytes: must be below"),
        (
            {"apiThrottlingRateLimit": 100, "apiThrottlingBurstLimit": 10},
            "apiThrottlingBurstLimit: must be >=",
        ),
        ({"workerMaxConcurrency": 1}, "workerMaxConcurrency: must be between 2 and 1000"),
        ({"ingestTimeoutSeconds": 30}, "ingestTimeoutSeconds: must be between 1 and 29"),
        ({"architecture": "sparc"}, "architecture: must be one of x86_64, arm64"),
        ({"visibilityTimeout": 10}, "visibilityTimeout: unknown key"),
    ],
)
def test_invalid_combination_names_the_key_and_the_rule(overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        build_stage_config({**BASE, **overrides}, where="ingestion.environments.test")
    assert f"ingestion.environments.test.{expected}" in str(error.value)


def test_every_broken_rule_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as types_error:
        build_stage_config({**BASE, "maxReceiveCount": 0, "batchSize": "ten", "useKmsCmk": 1})
    assert all(key in str(types_error.value) for key in ("maxReceiveCount", "batchSize", "useKmsCmk"))
    with pytest.raises(ConfigError) as rules_error:
        build_stage_config({**BASE, "authMode": "basic", "logRetentionDays": 2, "dlqRetentionDays": 1})
    assert all(key in str(rules_error.value) for key in ("authMode", "logRetentionDays", "dlqRetentionDays"))


def test_missing_required_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match="account"):
        build_stage_config({"envName": "dev", "region": "us-east-1"})


def test_unknown_environment_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"no environment named 'qa' \(known: \['dev', 'local', 'prod'\]\)"):
        load_stage_config(CONTEXT, "qa")


def test_missing_context_section_is_explained() -> None:
    with pytest.raises(ConfigError, match=r"ingestion: missing from the cdk\.json context"):
        load_stage_config({}, "dev")
