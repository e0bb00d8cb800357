"""cdk-nag acknowledgements: one finding, one reason, and the finding no longer fails synthesis."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks

from app.constructs.nag import suppress


def synth_with(tmp_path: Path, *, acknowledged: bool) -> None:
    app = App(outdir=str(tmp_path))
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    queue = sqs.Queue(Stack(app, "S"), "Q", enforce_ssl=True)
    if acknowledged:
        suppress(queue, "AwsSolutions-SQS3", "a probe queue of this test, never deployed")
    app.synth()


def test_an_acknowledged_finding_passes_and_an_unacknowledged_one_fails(tmp_path: Path) -> None:
    synth_with(tmp_path / "acknowledged", acknowledged=True)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        synth_with(tmp_path / "not", acknowledged=False)
