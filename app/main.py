"""Builds the stages' CDK app: one standalone IngestionStage per environment in STANDALONE_STAGES,
with cdk-nag over everything the app holds.

The entry point (cdk_app.py) adds the pipeline (pipeline/) to the same app; the pipeline builds its
stages with the same IngestionStage, so a stage deployed by hand and by the pipeline are one tree.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

from app.config import CONTEXT_KEY, load_stage_config
from app.stage import IngestionStage

# envName -> construct id of the standalone stage (`cdk deploy "IngestionDev/*"`).
STANDALONE_STAGES: dict[str, str] = {"local": "IngestionLocal", "dev": "IngestionDev"}
# Context keys that may override an environment's values from the command line or cdk.context.json,
# e.g. `cdk deploy -c account=123456789012 -c region=eu-west-1 "IngestionDev/*"`.
OVERRIDABLE_KEYS = ("account", "region", "alarmEmail", "webhookUrl", "pipelineAccount")

CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"


def context_section(app: App, key: str) -> Any:
    """A top-level context object: from the CDK CLI when it runs the app, else straight from cdk.json
    (so `python -m app`, tests and the pipeline's synth see the same values). None if absent."""
    section = app.node.try_get_context(key)
    if section is None:
        section = json.loads(CDK_JSON.read_text(encoding="utf-8"))["context"].get(key)
    return section


def stage_context(app: App) -> dict[str, Any]:
    """The "ingestion" context, shaped as load_stage_config reads it."""
    return {CONTEXT_KEY: context_section(app, CONTEXT_KEY)}


def context_overrides(app: App) -> dict[str, Any]:
    return {key: value for key in OVERRIDABLE_KEYS if (value := app.node.try_get_context(key)) is not None}


def add_checks(app: App) -> None:
    """cdk-nag (AwsSolutions + Serverless) over every stage; an unacknowledged finding fails synth."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), ServerlessChecks(app))


def add_standalone_stages(
    app: App, env_names: Iterable[str] | Mapping[str, str] = STANDALONE_STAGES, **overrides: Any
) -> dict[str, IngestionStage]:
    context = stage_context(app)
    stage_ids = (
        env_names if isinstance(env_names, Mapping) else {n: f"Ingestion{n.capitalize()}" for n in env_names}
    )
    return {
        env_name: IngestionStage(
            app,
            stage_id,
            config=load_stage_config(context, env_name, **{**context_overrides(app), **overrides}),
        )
        for env_name, stage_id in stage_ids.items()
    }


def build_app(app: App | None = None) -> App:
    # The CDK CLI passes CDK_OUTDIR; `python -m app` / `make synth` alone write to ./cdk.out too.
    app = app or (App() if "CDK_OUTDIR" in os.environ else App(outdir=str(CDK_JSON.parent / "cdk.out")))
    add_checks(app)
    add_standalone_stages(app)
    return app
