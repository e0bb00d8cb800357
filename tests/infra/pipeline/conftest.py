"""The pipeline alone (its stack and the dev and prod stages inside it), synthesized from cdk.json
once per session, for the tests that read it the way the rehearsal and the time budgets do."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk import App

from app.config import ALLOW_EXAMPLE_JWT_ISSUER
from lab.localcloud.codepipeline.assembly import SynthesizedPipeline, load_pipeline
from pipeline import build_pipeline
from pipeline.stack import PIPELINE_STACK_ID


def synthesize_pipeline(outdir: Path, context: dict[str, object] | None = None) -> SynthesizedPipeline:
    """The pipeline as cdk_app.py builds it (without the standalone stages), with extra context; prod
    keeps cdk.json's example JWT issuer (these tests are about the pipeline, not the issuer)."""
    app = App(outdir=str(outdir), context={ALLOW_EXAMPLE_JWT_ISSUER: True, **(context or {})})
    build_pipeline(app)
    app.synth()
    return load_pipeline(outdir, PIPELINE_STACK_ID)


@pytest.fixture(scope="session")
def pipeline_assembly(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedPipeline:
    return synthesize_pipeline(tmp_path_factory.mktemp("pipeline-assembly"))
