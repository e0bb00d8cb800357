"""Config validation: cdk.json environments load, and every invalid combination fails with its key."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.config import (
    AlarmSettings,
    ConfigError,
    StageConfig,
    build_stage_config,
    environment_names,
    load_stage_config,
    visibility_timeout_for,
)
from app.main import CDK_JSON
from functions.common import names

CONTEXT: dict[str, Any] = json.loads(CDK_JSON.read_text())["context"]
BASE = {"envName": "dev", "account": "111111111111", "region": "us-east-1"}


def test_cdk_json_declares_local_dev_and_prod() -> None:
    assert environment_names(CONTEXT) == ["local", "dev", "prod"]


def test_local_environment_is_tuned_for_minute_long_drills() -> None:
    local = load_stage_config(CONTEXT, "local")
    assert local.worker_timeout_seconds == 3
    assert local.visibility_timeout_seconds == 6 * 3 + 2
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


def test_prod_is_the_cost_profile_and_dev_and_local_keep_the_lab_parts() -> None:
    """docs/performance.md#cost: prod deploys no event-log function or audit queue, logs WARNING with
    the Lambda system log level WARN, and does not trace; dev and local keep what the drills read."""
    prod = load_stage_config(CONTEXT, "prod")
    assert (prod.event_audit, prod.log_level, prod.lambda_system_log_level, prod.tracing_enabled) == (
        False,
        "WARNING",
        "WARN",
        False,
    )
    assert not prod.logs_record_outcomes
    assert not prod.success_topic
    for env_name in ("dev", "local"):
        config = load_stage_config(CONTEXT, env_name)
        assert config.event_audit
        assert config.success_topic
        assert config.lambda_system_log_level == "INFO"
        assert config.logs_record_outcomes


def test_the_clients_name_the_event_audit_key_as_the_model_spells_it() -> None:
    assert StageConfig.model_fields["event_audit"].alias == names.EVENT_AUDIT_STAGE_KEY


def test_the_new_keys_default_to_the_lab_parts_and_platform_lines() -> None:
    config = build_stage_config(BASE)
    assert config.event_audit is True
    assert config.lambda_system_log_level == "INFO"
    assert config.logs_record_outcomes


@pytest.mark.parametrize(
    ("log_level", "logs_outcomes"), [("DEBUG", True), ("INFO", True), ("WARNING", False), ("ERROR", False)]
)
def test_record_outcomes_are_logged_at_info_and_below(log_level: str, logs_outcomes: bool) -> None:
    assert build_stage_config({**BASE, "logLevel": log_level}).logs_record_outcomes is logs_outcomes


def test_visibility_is_six_times_the_function_timeout_plus_the_batching_window() -> None:
    """AWS Lambda Developer Guide, "Using Lambda with Amazon SQS": queue visibility >= 6 x the function
    timeout (+ the batching window), so a throttled batch can be retried before it reappears."""
    assert visibility_timeout_for(function_timeout_seconds=45, batching_window_seconds=0) == 270
    assert visibility_timeout_for(function_timeout_seconds=45, batching_window_seconds=20) == 290
    config = build_stage_config({**BASE, "workerTimeoutSeconds": 45, "maxBatchingWindowSeconds": 20})
    assert config.visibility_timeout_seconds == 290
    assert build_stage_config({**BASE, **{"workerTimeoutSeconds": 45}}).visibility_timeout_seconds == 272
    # Below the derived minimum is refused, by exactly the batching window's share too.
    with pytest.raises(ConfigError, match=r"queueVisibilitySeconds: must be >= 6 x workerTimeoutSeconds \+ "):
        build_stage_config(
            {
                **BASE,
                "workerTimeoutSeconds": 45,
                "maxBatchingWindowSeconds": 20,
                "queueVisibilitySeconds": 289,
            }
        )
    explicit = {
        **BASE,
        "workerTimeoutSeconds": 45,
        "maxBatchingWindowSeconds": 20,
        "queueVisibilitySeconds": 290,
    }
    assert build_stage_config(explicit).visibility_timeout_seconds == 290


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
        (
            {"corsAllowedOrigins": ["*"]},
            "corsAllowedOrigins[0]: must be https://host[:port], or http://localhost / http://127.0.0.1 for "
            "local work ('*' is refused), got '*'",
        ),
        (
            {"corsAllowedOrigins": ["https://ok.example.com", "http://evil.example.com"]},
            "corsAllowedOrigins[1]: must be https://host[:port], or http://localhost / http://127.0.0.1 for "
            "local work ('*' is refused), got 'http://evil.example.com'",
        ),
        ({"alarms": {"periodSeconds": 45}}, "alarms.periodSeconds: must be 10, 30 or a multiple of 60"),
        ({"alarms": {"bogus": 1}}, "alarms.bogus: unknown key"),
        (
            {"alarms": {"periodSeconds": 3600, "evaluationPeriods": 25}},
            "alarms.evaluationPeriods: periodSeconds x",
        ),
        ({"jwtAudience": ["a", ""]}, "jwtAudience[1]: "),
        ({"envName": "Prod"}, "envName: must match"),
        ({"region": "mars"}, "region: must be an AWS region"),
        ({"repoUrl": "http://example.com"}, "repoUrl: must be an https:// URL"),
        ({"maxReceiveCount": 0}, "maxReceiveCount: must be between 1 and 1000"),
        ({"batchSize": "10"}, "batchSize: must be an integer"),
        ({"useKmsCmk": "yes"}, "useKmsCmk: must be true or false"),
        ({"kmsAlias": "alias/aws/sqs", "useKmsCmk": True}, "kmsAlias: must look like alias/<name>"),
        ({"kmsAlias": "alias/mine", "useKmsCmk": False}, "kmsAlias: only applies with useKmsCmk true"),
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
        ({"eventAudit": "no"}, "eventAudit: must be true or false"),
        ({"successTopic": False}, "successTopic: false requires eventAudit false"),
        ({"lambdaSystemLogLevel": "WARNING"}, "lambdaSystemLogLevel: must be one of DEBUG, INFO, WARN"),
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


def test_rules_are_reported_with_type_errors_in_one_message() -> None:
    """Field errors do not hide the cross-field rules: both come in one report."""
    with pytest.raises(ConfigError) as error:
        build_stage_config(
            {**BASE, "batchSize": "ten", "authMode": "jwt", "kmsAlias": "alias/a", "useKmsCmk": False}
        )
    message = str(error.value)
    for line in (
        "ingestion.batchSize: must be an integer, got 'ten'",
        "ingestion.jwtIssuer: authMode jwt requires an https:// issuer URL",
        "ingestion.jwtAudience: authMode jwt requires at least one audience",
        "ingestion.kmsAlias: only applies with useKmsCmk true",
    ):
        assert line in message


def test_a_rule_on_an_invalid_key_is_not_reported_twice() -> None:
    with pytest.raises(ConfigError) as error:
        build_stage_config({**BASE, "dlqRetentionDays": 0})
    assert str(error.value).count("dlqRetentionDays") == 1


def test_defaults_are_the_secure_ones() -> None:
    """An environment that sets nothing authenticates callers, encrypts with its own key, protects
    its data, refuses failure injection and answers no browser origin."""
    config = build_stage_config(BASE)
    assert config.auth_mode == "apiKey"
    assert config.cors_allowed_origins == ()
    assert config.use_kms_cmk is True
    assert config.deletion_protection is True
    assert config.failure_injection_enabled is False
    assert config.fis_enabled is False


def test_cdk_json_sets_only_what_differs_from_the_model() -> None:
    section = CONTEXT["ingestion"]
    assert set(section) == {"environments"}, "defaults live in the model (app/config/stage.py)"
    defaults = StageConfig.model_construct()
    for env_name, values in section["environments"].items():
        for key, value in values.items():
            name = next(n for n, f in StageConfig.model_fields.items() if f.alias == key)
            default = getattr(defaults, name, None)
            if key == "alarms":
                default_alarms = AlarmSettings().model_dump(by_alias=True)
                repeated = {k for k, v in value.items() if default_alarms[k] == v}
                assert not repeated, f"{env_name}.alarms repeats the model's defaults for {repeated}"
            else:
                as_json = list(default) if isinstance(default, tuple) else default
                assert value != as_json, f"{env_name}.{key} repeats the model's default {default!r}"


def test_a_defaults_block_in_the_context_is_refused() -> None:
    context = {
        "ingestion": {"defaults": {"batchSize": 10}, "environments": CONTEXT["ingestion"]["environments"]}
    }
    with pytest.raises(
        ConfigError, match=r"ingestion: unknown key\(s\) \['defaults'\]; defaults live in the model"
    ):
        load_stage_config(context, "dev")


def test_overrides_merge_alarm_settings_with_the_environment() -> None:
    config = load_stage_config(CONTEXT, "local", alarms={"dlqAgeSeconds": 45})
    assert (config.alarms.dlq_age_seconds, config.alarms.period_seconds) == (45, 10)
