"""What the stage reads from its logs: metric filters (errors by type, processed records) and the
saved Logs Insights queries of ops/queries/cloudwatch-insights."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from aws_cdk import aws_logs as logs
from constructs import Construct

from app.constructs.functions_code import REPO_ROOT
from functions.common import names

QUERIES_DIR = REPO_ROOT / "ops" / "queries" / "cloudwatch-insights"


def query_files(folder: Path = QUERIES_DIR) -> list[Path]:
    """The Logs Insights queries to deploy (none yet is fine: the folder is filled by ops work)."""
    return sorted(folder.glob("*.txt")) if folder.is_dir() else []


class LogMetrics(Construct):
    """ErrorsByType (dimension errorType) from every log line carrying one, and ProcessedTrue from
    the worker's "processed": true lines."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        error_sources: Mapping[str, logs.ILogGroup],
        processed_source: logs.ILogGroup,
    ) -> None:
        super().__init__(scope, construct_id)
        error_type = names.LogField.ERROR_TYPE.value
        for label, log_group in error_sources.items():
            logs.MetricFilter(
                self,
                f"{label}ErrorsByType",
                log_group=log_group,
                metric_namespace=names.METRICS_NAMESPACE,
                metric_name=names.MetricName.ERRORS_BY_TYPE.value,
                filter_pattern=logs.FilterPattern.exists(f"$.{error_type}"),
                metric_value="1",
                dimensions={error_type: f"$.{error_type}"},
            )
        logs.MetricFilter(
            self,
            "ProcessedTrue",
            log_group=processed_source,
            metric_namespace=names.METRICS_NAMESPACE,
            metric_name=names.MetricName.PROCESSED_TRUE.value,
            filter_pattern=logs.FilterPattern.boolean_value(f"$.{names.LogField.PROCESSED.value}", True),
            metric_value="1",
        )


class QueryDefinitions(Construct):
    """One saved query `<stage_prefix>/<file stem>` per query file, over the given log groups."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage_prefix: str,
        log_group_names: Sequence[str],
        files: Sequence[Path],
    ) -> None:
        super().__init__(scope, construct_id)
        for path in files:
            logs.CfnQueryDefinition(
                self,
                path.stem,
                name=f"{stage_prefix}/{path.stem}",
                query_string=path.read_text(encoding="utf-8").strip(),
                log_group_names=list(log_group_names),
            )
