"""The CDK app that cdk.json runs (`make synth`): the standalone stages (app/) and the delivery
pipeline (pipeline/), which deploys the same stages. It sits above both packages: app/ knows
nothing of the pipeline, and the pipeline uses app/ only through its public API."""

from __future__ import annotations

from aws_cdk import App

from app import build_app
from pipeline import build_pipeline


def build(app: App | None = None) -> App:
    """Every stage and the pipeline in one app, with cdk-nag over all of it."""
    app = build_app(app)
    build_pipeline(app)
    return app


if __name__ == "__main__":
    build().synth()
