"""The rehearsal's own logic: what it changes of the stages (and nothing else), the budgets of the
post-deploy commands, the bootstrap hint, and the record of a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.gamedays.spec import StageTiming
from lab.localcloud.codepipeline.execution import ActionRecord, ExecutionRecord, Link, StageRecord
from lab.rehearsal.budgets import StageSettings, UnboundedCommand, command_budget, smoke_budget
from lab.rehearsal.profile import ENGINE_GAPS, Issuer, accounts, cdk_context, context_document
from lab.rehearsal.report import write_run_report
from lab.rehearsal.runner import bootstrap_hint
from lab.rehearsal.setup import Setup, bootstrap_command
from tests import REPO_ROOT

ISSUER = Issuer(pool_id="us-east-1_abc", client_id="client123", region="us-east-1")


def test_the_context_document_changes_only_what_the_local_cloud_needs() -> None:
    context = cdk_context()
    document = context_document(context, ISSUER, "main")
    accounts_ = accounts(context)
    environments = context["ingestion"]["environments"]
    assert (document["pipelineAccount"], document["devAccount"], document["prodAccount"]) == (
        accounts_.pipeline,
        accounts_.dev,
        accounts_.prod,
    )
    assert len({accounts_.pipeline, accounts_.dev, accounts_.prod}) == 3
    dev, prod = document["stageSettings"]["dev"], document["stageSettings"]["prod"]
    # dev: what the engine lacks, and the local environment's drill timings; nothing else.
    assert set(dev) == set(ENGINE_GAPS) | {
        "workerTimeoutSeconds",
        "maxReceiveCount",
        "failureModeCacheSeconds",
        "alarms",
    }
    assert dev["alarms"] == environments["local"]["alarms"]
    # prod: what the engine lacks, and a real issuer of the local cloud.
    assert prod == {
        **ENGINE_GAPS,
        "jwtIssuer": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_abc",
        "jwtAudience": ["client123"],
    }
    assert document["connectionArn"].startswith(
        f"arn:aws:codestar-connections:us-east-1:{accounts_.pipeline}:connection/"
    )


def test_the_bootstrap_commands_are_the_delivery_documents() -> None:
    args = bootstrap_command("111111111111", "us-east-1", "333333333333")
    assert args == [
        "bootstrap",
        "aws://111111111111/us-east-1",
        "--trust",
        "333333333333",
        "--cloudformation-execution-policies",
        "arn:aws:iam::111111111111:policy/ingestion-lab-cfn-exec",
    ]
    assert (
        "cdk bootstrap aws://$DEV_ACCOUNT/us-east-1 --profile dev --trust $PIPELINE_ACCOUNT"
        in (REPO_ROOT / "docs" / "delivery.md").read_text()
    )


def setup() -> Setup:
    context = cdk_context()
    return Setup(0.0, accounts(context), "main", "ingestion-lab", "/p", "s", ISSUER, "pw")


def test_a_refused_bootstrap_role_is_explained_with_the_command_that_fixes_it() -> None:
    error = (
        "build FAILED\nfail: Could not assume role arn:aws:iam::111111111111:role/"
        "cdk-hnb659fds-file-publishing-role-111111111111-us-east-1: AccessDenied"
    )
    hint = bootstrap_hint(error, setup(), lambda _account, _role: False)
    assert hint is not None
    assert "lab pipeline init" in hint
    assert "cdk bootstrap aws://111111111111/us-east-1 --trust 333333333333" in hint
    # The role exists: a refusal is a permission problem, not a missing bootstrap.
    assert bootstrap_hint(error, setup(), lambda _account, _role: True) is None
    assert (
        bootstrap_hint("build FAILED: smoke: FAILED POST /events -> 500", setup(), lambda _a, _r: False)
        is None
    )


def test_a_retained_staging_bucket_without_its_role_is_explained_too() -> None:
    """A deleted CDKToolkit stack retains its bucket: cdk-assets then names the bucket, not the role."""
    error = (
        "build FAILED\nfail: Bucket named 'cdk-hnb659fds-assets-111111111111-us-east-1' exists, but we "
        "dont have access to it."
    )
    asked: list[tuple[str, str]] = []

    def missing(account: str, role: str) -> bool:
        asked.append((account, role))
        return False

    hint = bootstrap_hint(error, setup(), missing)
    assert hint is not None
    assert asked == [("111111111111", "cdk-hnb659fds-file-publishing-role-111111111111-us-east-1")]
    assert "cdk bootstrap aws://111111111111/us-east-1 --trust 333333333333" in hint
    assert "cdk-hnb659fds-assets-111111111111-us-east-1" in hint
    assert bootstrap_hint(error, setup(), lambda _a, _r: True) is None


SETTINGS = StageSettings(StageTiming(dlq_trip_s=80, alarm_s=40, ok_s=10), max_redrives=1)


def test_each_post_deploy_command_has_a_bound_and_an_unknown_one_is_refused(tmp_path: Path) -> None:
    smoke = command_budget("pipeline/scripts/in_stage.sh pipeline/scripts/smoke.sh", {}, SETTINGS)
    assert [b.command for b in smoke] == ["in_stage.sh", "smoke.sh"]
    # As the steps run them (pipeline.steps.script): through bash.
    through_bash = command_budget(
        "bash pipeline/scripts/in_stage.sh bash pipeline/scripts/smoke.sh", {}, SETTINGS
    )
    assert [(b.command, b.seconds) for b in through_bash] == [(b.command, b.seconds) for b in smoke]
    load = command_budget("python -m loadtest --target env --run-time 60s --verify-timeout 180", {}, SETTINGS)
    assert load[0].seconds == 60 + 60 + 180  # run time, Locust's stop grace, the gate's verify timeout
    gameday = command_budget("python -m lab.cli gameday poison-pill --target env", {}, SETTINGS)
    # max(default 300 s, trip 80 + alarms 40 + 10 + margin 120) + the wrap-up.
    assert gameday[0].seconds == 300 + 60
    with pytest.raises(UnboundedCommand, match="no time budget"):
        command_budget("python -m somethingnew", {}, SETTINGS)


def test_the_smoke_budget_follows_the_script_and_its_environment(tmp_path: Path) -> None:
    script = REPO_ROOT / "pipeline" / "scripts" / "smoke.sh"
    default = smoke_budget(script, {})
    assert default.seconds == 2 * (5 * 30 + 2 * (1 + 2 + 3 + 4))
    assert smoke_budget(script, {"SMOKE_ATTEMPTS": "1"}).seconds == 2 * 30
    changed = tmp_path / "smoke.sh"
    changed.write_text("#!/bin/sh\ncurl https://example.com\n")
    with pytest.raises(UnboundedCommand):
        smoke_budget(changed, {})


def test_the_run_record_has_every_action_its_log_and_its_reports(tmp_path: Path) -> None:
    pipeline_root, reports = tmp_path / "pipeline", tmp_path / "reports"
    (pipeline_root / "executions" / "e1" / "actions" / "Dev.Smoke").mkdir(parents=True)
    (pipeline_root / "executions" / "e1" / "actions" / "Dev.Smoke" / "log.txt").write_text("smoke: PASSED\n")
    kept = pipeline_root / "executions" / "e1" / "actions" / "Dev.Smoke" / "kept" / "reports" / "gameday.html"
    kept.parent.mkdir(parents=True)
    kept.write_text("<html></html>")
    record = ExecutionRecord(
        id="e1",
        pipeline="ingestion-lab",
        pipeline_version=2,
        trigger={"kind": "Push", "detail": "push of abc"},
        revision={"commit": "abc123", "branch": "main", "message": "change"},
        started_at=1000.0,
        ended_at=1100.0,
        status="Succeeded",
        stages=[StageRecord("Dev", "Succeeded", 1000.0, 1100.0)],
        actions=[
            ActionRecord(
                "Dev",
                "Smoke",
                "Build",
                "CodeBuild",
                9,
                status="Succeeded",
                started_at=1010.0,
                ended_at=1040.0,
                summary="build SUCCEEDED in 30 s",
                log="executions/e1/actions/Dev.Smoke/log.txt",
                links=[Link("reports/gameday.html", str(kept.relative_to(pipeline_root)))],
            ),
            ActionRecord("Dev", "Later", "Build", "CodeBuild", 10),
        ],
    )
    report = write_run_report(record, pipeline_root, reports)
    document = json.loads(report.json_path.read_text())
    smoke = document["actions"][0]
    assert (smoke["status"], smoke["seconds"], smoke["log"]) == (
        "Succeeded",
        30.0,
        "pipeline-e1/Dev.Smoke.log",
    )
    assert (reports / smoke["log"]).read_text() == "smoke: PASSED\n"
    assert smoke["links"] == [
        {"label": "reports/gameday.html", "path": "pipeline-e1/Dev.Smoke/reports/gameday.html"}
    ]
    page = report.html_path.read_text()
    assert "<svg" in page
    assert 'href="pipeline-e1/Dev.Smoke.log"' in page
    assert document["actions"][1]["status"] == "NotStarted"
