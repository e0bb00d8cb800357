"""The pipeline's context: validation with clear errors, overrides, and the prod gameday switch."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack, Stage, Validations, pipelines
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks

from app.config import ALLOW_EXAMPLE_JWT_ISSUER, EXAMPLE_JWT_ISSUER, ConfigError
from pipeline import build_pipeline
from pipeline.config import (
    LoadTestSettings,
    PipelineConfig,
    PipelineConfigError,
    build_pipeline_config,
    load_pipeline_config,
    pipeline_stage_configs,
)
from pipeline.stack import cdk_cli_version
from tests import REPO_ROOT as REPO

CONTEXT: dict[str, Any] = json.loads((REPO / "cdk.json").read_text())["context"]


def pipeline_section(**changes: Any) -> dict[str, Any]:
    return {**CONTEXT["pipeline"], **changes}


def test_cdk_json_describes_a_valid_pipeline_with_placeholder_accounts() -> None:
    config = load_pipeline_config(CONTEXT)
    assert config.account == "333333333333"
    assert config.gameday_in_prod is False
    assert config.load == LoadTestSettings(
        users=10,
        spawn_rate=5,
        run_time="60s",
        rps_per_user=2,
        duplicate_pool_size=20,
        max_failure_ratio=0.01,
        max_p95_ms=1500,
        min_requests=100,
        verify_timeout_seconds=180,
    )
    # Placeholders only: the stage accounts of cdk.json are not real either.
    accounts = {env["account"] for env in CONTEXT["ingestion"]["environments"].values()} | {config.account}
    assert accounts <= {"000000000000", "111111111111", "222222222222", "333333333333"}


def test_top_level_keys_override_the_pipeline_object() -> None:
    context = {
        **CONTEXT,
        "pipelineAccount": "123456789012",
        "branch": "release",
        "gamedayInProd": "true",  # what `cdk -c gamedayInProd=true` passes
        "prodAccount": "210987654321",
    }
    config = load_pipeline_config(context)
    assert (config.account, config.branch, config.gameday_in_prod) == ("123456789012", "release", True)
    assert config.stage_overrides == {
        "dev": {"pipelineAccount": "123456789012"},
        "prod": {"account": "210987654321", "pipelineAccount": "123456789012"},
    }


def test_every_broken_rule_is_reported_at_once() -> None:
    raw = pipeline_section(
        account="12345",
        connectionArn="arn:aws:s3:::bucket",
        repository="no-owner",
        gamedayInProd="maybe",
        stepTimeoutMinutes=1,
        load={"users": 0, "maxFailureRatio": 2, "runTime": "soon"},
    )
    with pytest.raises(PipelineConfigError) as error:
        build_pipeline_config(raw)
    message = str(error.value)
    for key in (
        "pipeline.account",
        "pipeline.connectionArn",
        "pipeline.repository",
        "pipeline.gamedayInProd",
        "pipeline.stepTimeoutMinutes",
        "pipeline.load.users",
        "pipeline.load.maxFailureRatio",
        "pipeline.load.runTime",
    ):
        assert key in message


def test_unknown_and_missing_keys_are_refused() -> None:
    raw = pipeline_section(brnach="main")
    del raw["connectionArn"]
    with pytest.raises(PipelineConfigError, match=r"pipeline\.brnach: unknown key") as error:
        build_pipeline_config(raw)
    assert "pipeline.connectionArn: required" in str(error.value)
    with pytest.raises(PipelineConfigError, match=r"missing from the cdk\.json context"):
        load_pipeline_config({"ingestion": CONTEXT["ingestion"]})


def test_cli_version_is_the_one_pinned_in_package_json(tmp_path: Path) -> None:
    pinned = json.loads((REPO / "package.json").read_text())["devDependencies"]["aws-cdk"]
    assert cdk_cli_version() == pinned.lstrip("^~=")
    other = tmp_path / "package.json"
    other.write_text(json.dumps({"devDependencies": {"aws-cdk": "^2.1000.0"}}))
    assert cdk_cli_version(other) == "2.1000.0"
    assert cdk_cli_version(tmp_path / "missing.json") == "2.1148.1"


def app_with(prod_changes: dict[str, Any], **pipeline_changes: Any) -> App:
    ingestion = copy.deepcopy(CONTEXT["ingestion"])
    ingestion["environments"]["prod"].update(prod_changes)
    return App(
        context={
            "ingestion": ingestion,
            "pipeline": pipeline_section(**pipeline_changes),
            ALLOW_EXAMPLE_JWT_ISSUER: True,  # these tests are about the pipeline, not the issuer
        }
    )


def actions_of(stack: Any, stage_name: str) -> list[tuple[str, int]]:
    (stage,) = [s for s in stack.pipeline.pipeline.stages if s.stage_name == stage_name]
    return [(a.action_properties.action_name, a.action_properties.run_order or 1) for a in stage.actions]


def test_gameday_in_prod_runs_after_the_prod_smoke_when_enabled() -> None:
    stack = build_pipeline(
        app_with(
            {"failureInjectionEnabled": True, "eventAudit": True, "successTopic": True}, gamedayInProd=True
        )
    )
    prod = dict(actions_of(stack, "Prod"))
    assert prod["Smoke"] < prod["PoisonPillGameday"]


def test_gameday_in_prod_is_refused_while_prod_refuses_failure_injection() -> None:
    with pytest.raises(PipelineConfigError, match="failureInjectionEnabled false"):
        build_pipeline(app_with({"eventAudit": True, "successTopic": True}, gamedayInProd=True))


def test_gameday_in_prod_is_refused_while_prod_has_no_event_audit_queue() -> None:
    """The gameday counts IngestionSuccess events on the audit queue, which eventAudit false removes."""
    with pytest.raises(PipelineConfigError) as error:
        build_pipeline(app_with({"failureInjectionEnabled": True}, gamedayInProd=True))
    message = str(error.value)
    assert "pipeline.gamedayInProd:" in message
    assert "eventAudit false" in message
    assert "failureInjectionEnabled" not in message


def test_a_dev_stage_without_event_audit_is_refused_with_the_key_not_a_traceback() -> None:
    """Dev's post-deploy load test and gameday read the audit queue's URL from dev's outputs."""
    with pytest.raises(PipelineConfigError) as error:
        build_pipeline(app_with({}, stageSettings={"dev": {"eventAudit": False}}))
    assert "pipeline.stageSettings.dev.eventAudit:" in str(error.value)


def test_cdk_nag_reaches_the_stages_a_pipeline_synthesizes(tmp_path: Path) -> None:
    """CDK Pipelines synthesizes a stage as it is added; the checks registered on the app must still
    see the stage's resources (this is why cdk-nag runs as a validation plugin of the app)."""
    app = App(outdir=str(tmp_path))
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    stack = Stack(app, "Pipeline", env={"account": "333333333333", "region": "us-east-1"})
    pipeline = pipelines.CodePipeline(
        stack,
        "CodePipeline",
        synth=pipelines.ShellStep(
            "Synth",
            input=pipelines.CodePipelineSource.connection(
                "o/r", "main", connection_arn=CONTEXT["pipeline"]["connectionArn"]
            ),
            commands=["npx cdk synth"],
        ),
    )
    stage = Stage(stack, "Dev", env={"account": "333333333333", "region": "us-east-1"})
    sqs.Queue(Stack(stage, "Service"), "QueueWithoutDlq")
    pipeline.add_stage(stage)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    flagged = {
        construct["constructPath"]
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        if violation["ruleName"] == "AwsSolutions-SQS3"
        for construct in violation["violatingConstructs"]
    }
    assert flagged == {"Pipeline/Dev/Service/QueueWithoutDlq/Resource"}


def test_cdk_json_sets_only_what_has_no_default() -> None:
    """The pipeline object of cdk.json holds the placeholders of the required keys; defaults live in
    the model (pipeline/config.py)."""
    assert set(CONTEXT["pipeline"]) == {"account", "region", "connectionArn", "repository"}
    assert {key for key, field in PipelineConfig.model_fields.items() if field.is_required()} == {
        "account",
        "region",
        "connection_arn",
        "repository",
    }


def test_load_settings_refuse_strings_and_booleans_for_numbers() -> None:
    with pytest.raises(PipelineConfigError) as error:
        build_pipeline_config(pipeline_section(load={"users": "10", "spawnRate": True, "maxP95Ms": "fast"}))
    message = str(error.value)
    assert "pipeline.load.users: must be an integer, got '10'" in message
    assert "pipeline.load.spawnRate: must be a number, got True" in message
    assert "pipeline.load.maxP95Ms: must be a number, got 'fast'" in message


# --- The prod stage's identity provider -----------------------------------------------------------

REAL_ISSUER = "https://login.example.org/oauth2/ingestion"


def test_the_jwt_issuer_and_audience_come_from_the_context_like_the_accounts() -> None:
    """cdk.context.json (or the pipeline's context parameter) names the real identity provider; from
    `-c`, the audiences come comma-separated."""
    context = {**CONTEXT, "prodJwtIssuer": REAL_ISSUER, "prodJwtAudience": "ingestion-api, smoke"}
    _, dev, prod = pipeline_stage_configs(context)
    assert prod.jwt_issuer == REAL_ISSUER
    assert prod.jwt_audience == ("ingestion-api", "smoke")
    assert (dev.jwt_issuer, dev.jwt_audience) == (None, ())
    listed = {**CONTEXT, "prodJwtAudience": ["one"]}
    assert pipeline_stage_configs(listed)[2].jwt_audience == ("one",)


def test_a_prod_stage_trusting_the_example_issuer_is_refused() -> None:
    """The example issuer of cdk.json would 401 every real token: synthesizing it is refused, with
    the keys that fix it in the message."""
    assert CONTEXT["ingestion"]["environments"]["prod"]["jwtIssuer"] == EXAMPLE_JWT_ISSUER
    with pytest.raises(ConfigError, match=r"prod\.jwtIssuer: .*example.*prodJwtIssuer"):
        build_pipeline(App(context={"ingestion": CONTEXT["ingestion"], "pipeline": CONTEXT["pipeline"]}))


@pytest.mark.parametrize("allowed", [True, "true"])
def test_the_example_issuer_is_synthesized_when_the_context_allows_it(allowed: Any) -> None:
    context = {
        "ingestion": CONTEXT["ingestion"],
        "pipeline": CONTEXT["pipeline"],
        ALLOW_EXAMPLE_JWT_ISSUER: allowed,
    }
    stack = build_pipeline(App(context=context))
    assert stack.prod_stage.config.jwt_issuer == EXAMPLE_JWT_ISSUER


def test_a_real_issuer_needs_no_permission() -> None:
    context = {
        "ingestion": CONTEXT["ingestion"],
        "pipeline": CONTEXT["pipeline"],
        "prodJwtIssuer": REAL_ISSUER,
    }
    assert build_pipeline(App(context=context)).prod_stage.config.jwt_issuer == REAL_ISSUER
