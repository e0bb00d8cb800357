"""cdk-nag (AwsSolutions + Serverless) acknowledges every finding; cfn-lint finds nothing in any template."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_sqs as sqs
from cfnlint.api import ManualArgs, lint

from app.main import add_checks
from tests.infra.synth import Synthesis

# Rules ignored, each with the reason (they flag what CDK itself generates, not our choices):
CFN_LINT_IGNORED = {
    # CDK adds DependsOn on a function's role next to the Fn::GetAtt of that role, so the function
    # waits for the role's policy too; the explicit dependency is redundant only for the role.
    "W3005": "redundant DependsOn emitted by CDK for Lambda execution roles",
}


def test_cdk_nag_reports_no_unacknowledged_finding(synthesis: Synthesis) -> None:
    report = synthesis.validation_report()
    findings = [
        f"{violation['ruleName']} at {construct['constructPath']}"
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    ]
    assert findings == []
    assert synthesis.validation_error is None


def test_both_nag_packs_gate_synthesis(tmp_path: Path) -> None:
    app = App(outdir=str(tmp_path))
    add_checks(app)
    sqs.CfnQueue(Stack(app, "Unsafe"), "QueueWithoutDlqOrTls")
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = (tmp_path / "validation-report.json").read_text()
    assert "AwsSolutions-SQS3" in report  # AwsSolutions pack
    assert "Serverless-SQSRedrivePolicy" in report  # Serverless pack


def test_cfn_lint_finds_no_error_or_warning_in_any_template(synthesis: Synthesis) -> None:
    config = ManualArgs(regions=["us-east-1"], ignore_checks=list(CFN_LINT_IGNORED))
    problems = []
    for stage in synthesis.stages.values():
        for kind, path in stage.files.items():
            for match in lint(path.read_text(), config=config):
                problems.append(f"{stage.config.env_name}/{kind}: {match.rule.id} {match.message}")
    assert problems == []
