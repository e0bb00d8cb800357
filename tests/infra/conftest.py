"""One synthesis per test session: local, dev and prod stages with cdk-nag, templates shared by all tests."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk.assertions import Template

from app.config import ALLOW_EXAMPLE_JWT_ISSUER
from app.main import add_checks, add_standalone_stages
from tests.infra.bare_stack import BareStack
from tests.infra.synth import ALARM_EMAIL, PIPELINE_ACCOUNT, WEBHOOK_URL, Synthesis, SynthesizedStage


@pytest.fixture(scope="session")
def synthesis() -> Iterator[Synthesis]:
    with tempfile.TemporaryDirectory(prefix="infra-tests-") as outdir:
        # The prod stage as cdk.json describes it, example JWT issuer included (opted out explicitly:
        # a real synth refuses it, tests/infra/pipeline/test_config.py).
        app = App(outdir=outdir, context={ALLOW_EXAMPLE_JWT_ISSUER: True})
        add_checks(app)
        stages = add_standalone_stages(
            app,
            {"local": "IngestionLocal", "dev": "IngestionDev", "prod": "IngestionProd"},
            pipelineAccount=PIPELINE_ACCOUNT,
            alarmEmail=ALARM_EMAIL,
            webhookUrl=WEBHOOK_URL,
        )
        error: str | None = None
        try:
            app.synth()
        except RuntimeError as exc:  # cdk-nag findings fail synthesis; the templates are still written
            error = str(exc)
        synthesized = {}
        for env_name, stage in stages.items():
            raw: dict[str, dict[str, Any]] = {}
            files: dict[str, Path] = {}
            for stack in (stage.state, stage.compute, stage.api, stage.observability):
                kind = stack.stack_name.rsplit("-", 1)[1]
                files[kind] = Path(stage.outdir) / Stack.of(stack).template_file
                raw[kind] = json.loads(files[kind].read_text())
            synthesized[env_name] = SynthesizedStage(
                stage=stage,
                config=stage.config,
                templates={kind: Template.from_json(template) for kind, template in raw.items()},
                raw=raw,
                files=files,
            )
        yield Synthesis(outdir=Path(outdir), stages=synthesized, validation_error=error)


@pytest.fixture(scope="session")
def local(synthesis: Synthesis) -> SynthesizedStage:
    return synthesis.stages["local"]


@pytest.fixture(scope="session")
def dev(synthesis: Synthesis) -> SynthesizedStage:
    return synthesis.stages["dev"]


@pytest.fixture(scope="session")
def prod(synthesis: Synthesis) -> SynthesizedStage:
    return synthesis.stages["prod"]


@pytest.fixture(scope="session", params=["local", "dev", "prod"])
def any_stage(request: pytest.FixtureRequest, synthesis: Synthesis) -> SynthesizedStage:
    return synthesis.stages[request.param]


@pytest.fixture
def bare(tmp_path: Path) -> BareStack:
    """A bare Stack for one construct's test (tests/infra/app/constructs, tests/infra/app/components)."""
    return BareStack(tmp_path)
