"""Every post-deploy step fits its CodeBuild timeout under its own environment's synthesized
settings (dev and prod, not only the local cloud): CodeBuild stops a build at its project's timeout
(CodeBuild API Reference, Project timeoutInMinutes) and the pipeline stops before prod.

The worst cases come from lab/rehearsal/budgets.py: the drill's budget formula with the stage's
queue and DLQ alarms as synthesized, the load test's limits, the smoke script's retries."""

from __future__ import annotations

from pathlib import Path

from app import load_stage_config
from app.config import visibility_timeout_for
from lab.localcloud.codepipeline.assembly import SynthesizedPipeline
from lab.rehearsal.budgets import budget_table, stage_settings, step_budgets
from pipeline.config import load_pipeline_config
from tests import REPO_ROOT
from tests.infra.pipeline.conftest import synthesize_pipeline

# The dev settings before drill-sizing: visibility 182 s, 5 receives, alarms over 5 periods, DLQ
# age 300 s (issue 13: its gameday needed about 30 minutes, the whole step timeout).
DEV_AS_IT_WAS = {
    "workerTimeoutSeconds": 30,
    "maxReceiveCount": 5,
    "alarms": {"evaluationPeriods": 5, "dlqAgeSeconds": 300},
}


def test_every_post_deploy_step_fits_its_codebuild_timeout_in_dev_and_prod(
    pipeline_assembly: SynthesizedPipeline,
) -> None:
    budgets = step_budgets(pipeline_assembly)
    table = budget_table(budgets)
    print("\n" + table)
    assert {(b.stage, b.step) for b in budgets} >= {
        ("Dev", "Smoke"),
        ("Dev", "PoisonPillGameday"),
        ("Prod", "Smoke"),
    }
    assert all(b.fits for b in budgets), table


def test_the_gameday_budget_reads_the_stage_settings_as_synthesized(
    pipeline_assembly: SynthesizedPipeline,
) -> None:
    import json

    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    overrides = load_pipeline_config(context).stage_overrides["dev"]
    dev = load_stage_config(context, "dev", **overrides)
    settings = stage_settings(pipeline_assembly.stage_stacks("Dev"))
    visibility = visibility_timeout_for(
        function_timeout_seconds=dev.worker_timeout_seconds,
        batching_window_seconds=dev.max_batching_window_seconds,
    )
    assert settings.details == {
        "visibilityTimeout": visibility,
        "maxReceiveCount": dev.max_receive_count,
        "dlqAlarms": 2,
    }
    assert settings.timing.dlq_trip_s == visibility * (dev.max_receive_count + 1)
    one_window = dev.alarms.period_seconds * dev.alarms.evaluation_periods
    # The age-of-oldest alarm first waits for a message to be dlqAgeSeconds old in the DLQ.
    assert settings.timing.alarm_s == dev.alarms.dlq_age_seconds + one_window
    assert settings.timing.ok_s == one_window
    assert settings.max_redrives == dev.max_redrives_per_message


def test_dev_as_it_was_would_not_fit_its_gameday_step(tmp_path: Path) -> None:
    """The test fails on the settings that broke the pipeline: it measures something."""
    synthesized = synthesize_pipeline(tmp_path, {"stageSettings": {"dev": DEV_AS_IT_WAS}})
    budgets = {(b.stage, b.step): b for b in step_budgets(synthesized)}
    gameday = budgets[("Dev", "PoisonPillGameday")]
    assert not gameday.fits
    assert gameday.worst_case_s > gameday.timeout_s == 30 * 60
    assert budgets[("Dev", "Smoke")].fits
