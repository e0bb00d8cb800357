"""The pipeline alone (its stack and the dev and prod stages inside it), synthesized from cdk.json
once per session, for the tests that read it the way the rehearsal and the time budgets do."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk import App

from lab.localcloud.codepipeline.assembly import SynthesizedPipeline, load_pipeline
from pipeline import build_pipeline
from pipeline.stack import PIPELINE_STACK_ID


def synthesize_pipeline(outdir: Path, context: dict[str, object] | None = None) -> SynthesizedPipeline:
    """The pipeline as cdk_app.py builds it (without the standalone stages), with extra context."""
    app = App(outdir=str(outdir), context=context or {})
    build_pipeline(app)
    app.synth()
    return load_pipeline(outdir, PIPELINE_STACK_ID)


@pytest.fixture(scope="session")
def pipeline_assembly(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedPipeline:
    return synthesize_pipeline(tmp_path_factory.mktemp("pipeline-assembly"))
