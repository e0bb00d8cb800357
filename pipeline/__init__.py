"""CDK Pipelines delivery of the ingestion stage: dev, checks, manual approval, prod."""

from pipeline.stack import build_pipeline

__all__ = ["build_pipeline"]
