"""Log metric filters and saved queries on a bare Stack."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_logs as logs

from app.components.log_insights import LogMetrics, QueryDefinitions
from functions.common import names
from tests.infra.bare_stack import BareStack


def test_errors_by_type_from_each_source_and_processed_records_from_one(bare: BareStack) -> None:
    a, b = logs.LogGroup(bare.stack, "A"), logs.LogGroup(bare.stack, "B")
    LogMetrics(bare.stack, "Metrics", error_sources={"A": a, "B": b}, processed_source=b)
    by_metric: dict[str, set[str]] = {}
    for metric_filter in bare.resources("AWS::Logs::MetricFilter").values():
        (transformation,) = metric_filter["Properties"]["MetricTransformations"]
        assert transformation["MetricNamespace"] == names.METRICS_NAMESPACE
        by_metric.setdefault(transformation["MetricName"], set()).add(
            bare.ref(metric_filter["Properties"]["LogGroupName"])
        )
    assert by_metric == {
        names.MetricName.ERRORS_BY_TYPE.value: {bare.logical_id(a), bare.logical_id(b)},
        names.MetricName.PROCESSED_TRUE.value: {bare.logical_id(b)},
    }


def test_no_processed_source_no_processed_true_filter(bare: BareStack) -> None:
    a = logs.LogGroup(bare.stack, "A")
    LogMetrics(bare.stack, "Metrics", error_sources={"A": a}, processed_source=None)
    metrics = {
        f["Properties"]["MetricTransformations"][0]["MetricName"]
        for f in bare.resources("AWS::Logs::MetricFilter").values()
    }
    assert metrics == {names.MetricName.ERRORS_BY_TYPE.value}


def test_one_saved_query_per_file(bare: BareStack, tmp_path: Path) -> None:
    (tmp_path / "slow.txt").write_text("fields @timestamp\n")
    QueryDefinitions(
        bare.stack, "Queries", stage_prefix="ingestion-test", log_group_names=["/aws/lambda/x"],
        files=[tmp_path / "slow.txt"],
    )  # fmt: skip
    (query,) = bare.resources("AWS::Logs::QueryDefinition").values()
    assert query["Properties"] == {
        "Name": "ingestion-test/slow",
        "QueryString": "fields @timestamp",
        "LogGroupNames": ["/aws/lambda/x"],
    }
