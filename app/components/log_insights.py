"""What the stage reads from its logs: metric filters (errors by type, processed records) and the
saved Logs Insights queries of ops/queries/cloudwatch-insights.

A query file that reads lines of a given level says so in a `# logLevel: <LEVEL>` line; a stage whose
logLevel is above it writes none of those lines, so the query (empty or misleading there) is not
deployed. The ProcessedTrue filter reads the worker's INFO lines, and follows the same rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from aws_cdk import aws_logs as logs
from constructs import Construct

from app.constructs.functions_code import REPO_ROOT
from functions.common import names

QUERIES_DIR = REPO_ROOT / "ops" / "queries" / "cloudwatch-insights"


# Powertools' levels, most verbose first (the values of the stage key logLevel).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_NEEDS_LEVEL = re.compile(r"^# logLevel: (\w+)\b", re.MULTILINE)


def query_files(folder: Path = QUERIES_DIR) -> list[Path]:
    """The Logs Insights queries of the folder (none yet is fine: the folder is filled by ops work)."""
    return sorted(folder.glob("*.txt")) if folder.is_dir() else []


def needed_log_level(path: Path) -> str:
    """The most terse logLevel that still writes the lines `path` reads (ERROR: any level does)."""
    found = _NEEDS_LEVEL.findall(path.read_text(encoding="utf-8"))
    if len(found) > 1 or (found and found[0] not in LOG_LEVELS):
        raise ValueError(f"{path.name}: one `# logLevel: <{'|'.join(LOG_LEVELS)}>` line at most, got {found}")
    return found[0] if found else LOG_LEVELS[-1]


def queries_for(log_level: str, folder: Path = QUERIES_DIR) -> list[Path]:
    """The queries a stage logging at `log_level` can answer."""
    rank = LOG_LEVELS.index(log_level)
    return [path for path in query_files(folder) if rank <= LOG_LEVELS.index(needed_log_level(path))]


class LogMetrics(Construct):
    """ErrorsByType (dimension errorType) from every log line carrying one, and ProcessedTrue from
    the worker's "processed": true lines (none without a processed source: a stage above INFO)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        error_sources: Mapping[str, logs.ILogGroup],
        processed_source: logs.ILogGroup | None,
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
                # The lab's own error types only: in the JSON log format the Python runtime writes
                # an unhandled exception as a record with a top-level errorType, the exception's
                # class (AWS Lambda Developer Guide, "Using Lambda advanced logging controls with
                # Python"), and each new class would become one more custom metric. Those failures
                # show in AWS/Lambda Errors.
                filter_pattern=logs.FilterPattern.any(
                    *(
                        logs.FilterPattern.string_value(f"$.{error_type}", "=", kind.value)
                        for kind in names.ErrorType
                    )
                ),
                metric_value="1",
                dimensions={error_type: f"$.{error_type}"},
            )
        if processed_source is None:
            return
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
