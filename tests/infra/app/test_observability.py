"""Alarms, dashboard, log metric filters and Logs Insights query definitions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.components.log_insights import needed_log_level, queries_for, query_files
from functions.common import names
from lab.localcloud.log_metrics import filter_matches
from tests import REPO_ROOT
from tests.infra.synth import ALARM_EMAIL, WEBHOOK_URL, SynthesizedStage

# slug -> (namespace, metric, statistic, dimension owner, threshold config attribute, runbook)
ALARMS: dict[str, tuple[str, str, str, str, str, str]] = {
    "dlq-depth": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", "dlq",
                  "dlq_visible_threshold", "poison-pill"),
    "dlq-age": ("AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum", "dlq",
                "dlq_age_seconds", "poison-pill"),
    "main-queue-age": ("AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum", "queue",
                       "main_queue_age_seconds", "backlog"),
    "main-queue-visible": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", "queue",
                           "main_queue_visible_threshold", "backlog"),
    "worker-errors": ("AWS/Lambda", "Errors", "Sum", "worker", "lambda_errors_threshold",
                      "timeout-vs-visibility"),
    "worker-throttles": ("AWS/Lambda", "Throttles", "Sum", "worker", "lambda_throttles_threshold",
                         "throttling"),
    "ingest-errors": ("AWS/Lambda", "Errors", "Sum", "ingest", "lambda_errors_threshold", "poison-pill"),
    "ingest-throttles": ("AWS/Lambda", "Throttles", "Sum", "ingest", "lambda_throttles_threshold",
                         "throttling"),
    "redrive-quarantined": (names.METRICS_NAMESPACE, names.MetricName.REDRIVE_QUARANTINED.value, "Sum",
                            "service", "quarantine_threshold", "redrive-quarantine"),
    "idempotency-conflicts": (names.METRICS_NAMESPACE, names.MetricName.IDEMPOTENCY_CONFLICTS.value, "Sum",
                              "service", "idempotency_conflict_threshold", "idempotency-conflict"),
    "relay-failures": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", "relay_failures",
                       "dlq_visible_threshold", "event-relay"),
    "relay-errors": ("AWS/Lambda", "Errors", "Sum", "relay", "lambda_errors_threshold", "event-relay"),
    "relay-iterator-age": ("AWS/Lambda", "IteratorAge", "Maximum", "relay", "relay_iterator_age_ms",
                           "event-relay"),
}  # fmt: skip


def _threshold(config: Any, attribute: str) -> float:
    """The configured threshold in the alarm's unit (IteratorAge is in milliseconds)."""
    if attribute == "relay_iterator_age_ms":
        return float(config.alarms.relay_iterator_age_seconds * 1000)
    return float(getattr(config.alarms, attribute))


def _alarms(stage: SynthesizedStage) -> dict[str, dict[str, Any]]:
    return {
        alarm["Properties"]["AlarmName"]: alarm["Properties"]
        for alarm in stage.resources("observability", "AWS::CloudWatch::Alarm").values()
    }


def _dimension(stage: SynthesizedStage, owner: str) -> tuple[str, str]:
    state, compute = stage.stage.state, stage.stage.compute
    owners = {
        "dlq": ("QueueName", f"{stage.logical_id(state.dlq)}.QueueName"),
        "queue": ("QueueName", f"{stage.logical_id(state.queue)}.QueueName"),
        "worker": ("FunctionName", stage.logical_id(compute.worker.function)),
        "ingest": ("FunctionName", stage.logical_id(compute.ingest.function)),
        "relay": ("FunctionName", stage.logical_id(compute.relay.function)),
        "relay_failures": ("QueueName", f"{stage.logical_id(state.relay_failures)}.QueueName"),
        "service": ("service", names.SERVICE_NAME),
    }
    return owners[owner]


@pytest.mark.parametrize("slug", sorted(ALARMS))
def test_alarm_metric_threshold_period_actions_and_runbook(any_stage: SynthesizedStage, slug: str) -> None:
    namespace, metric, statistic, owner, threshold_attr, runbook = ALARMS[slug]
    config = any_stage.config
    alarm = _alarms(any_stage)[f"{config.prefix}-{slug}"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (namespace, metric, statistic)
    (dimension,) = alarm["Dimensions"]
    assert (dimension["Name"], any_stage.ref(dimension["Value"])) == _dimension(any_stage, owner)
    assert alarm["Threshold"] == _threshold(config, threshold_attr)
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["Period"] == config.alarms.period_seconds
    assert alarm["EvaluationPeriods"] == config.alarms.evaluation_periods
    assert alarm["DatapointsToAlarm"] == config.alarms.evaluation_periods
    assert alarm["TreatMissingData"] == "notBreaching"
    topic = any_stage.logical_id(any_stage.stage.observability.alarm_topic)
    assert alarm["AlarmActions"] == [{"Ref": topic}]
    assert alarm["OKActions"] == [{"Ref": topic}]
    assert f"{config.repo_url}/blob/main/ops/runbooks/{runbook}.md" in alarm["AlarmDescription"]


def test_every_runbook_an_alarm_links_exists() -> None:
    runbooks = REPO_ROOT / "ops" / "runbooks"
    for *_, runbook in ALARMS.values():
        assert (runbooks / f"{runbook}.md").is_file(), runbook


def test_the_stage_has_exactly_the_specified_alarms(any_stage: SynthesizedStage) -> None:
    assert set(_alarms(any_stage)) == {f"{any_stage.config.prefix}-{slug}" for slug in ALARMS}


def test_local_alarms_use_ten_second_periods(local: SynthesizedStage) -> None:
    assert {alarm["Period"] for alarm in _alarms(local).values()} == {10}


def test_the_dlq_alarm_fires_after_five_minutes_in_prod_and_one_in_drill_sized_dev(
    dev: SynthesizedStage, prod: SynthesizedStage
) -> None:
    """dev's alarms evaluate one period so that its poison-pill gameday fits the pipeline step's
    CodeBuild timeout (tests/infra/pipeline/test_time_budgets.py; docs/deviations.md)."""
    for stage, seconds in ((prod, 300), (dev, 60)):
        alarm = _alarms(stage)[f"{stage.config.prefix}-dlq-depth"]
        assert (alarm["Period"] * alarm["EvaluationPeriods"], alarm["Threshold"]) == (seconds, 0)


def test_alarm_topic_notifies_email_webhook_and_the_drills_inbox(any_stage: SynthesizedStage) -> None:
    (inbox,) = [q for q in any_stage.stage.observability.node.find_all() if q.node.id == "Inbox"]
    subscriptions = {
        (s["Properties"]["Protocol"], any_stage.ref(s["Properties"]["Endpoint"]))
        for s in any_stage.resources("observability", "AWS::SNS::Subscription").values()
    }
    assert subscriptions == {
        ("email", ALARM_EMAIL),
        ("https", WEBHOOK_URL),
        ("sqs", f"{any_stage.logical_id(inbox)}.Arn"),
    }


def _dashboard_body(stage: SynthesizedStage) -> str:
    (dashboard,) = stage.resources("observability", "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]
    return body if isinstance(body, str) else json.dumps(body)


def test_dashboard_has_the_specified_widgets(any_stage: SynthesizedStage) -> None:
    body = _dashboard_body(any_stage)
    for metric in (
        "ApproximateNumberOfMessagesVisible",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateAgeOfOldestMessage",
        "Invocations",
        "Errors",
        "Throttles",
        "Duration",
        "MatchedEvents",
        names.MetricName.ERRORS_BY_TYPE.value,
        names.MetricName.REDRIVE_QUARANTINED.value,
        names.MetricName.IDEMPOTENCY_CONFLICTS.value,
        *(metric.value for metric in names.DeliveryMetricName),
    ):
        assert f'\\"{metric}\\"' in body or f'"{metric}"' in body, metric
    assert '\\"stat\\":\\"p95\\"' in body
    for detail in names.DetailType:
        assert detail.value in body
    for queue in ("main", "DLQ", "quarantine", "relay failures"):
        assert f"Queue {queue}: visible / not visible / age of oldest" in body
    assert "alarm" in body


def test_the_processed_true_widget_shows_only_where_the_filter_is_deployed(
    any_stage: SynthesizedStage,
) -> None:
    """Above INFO (prod) the worker writes no "record processed" line: no ProcessedTrue series, and
    a text widget that says why and where processed records are counted instead."""
    body = _dashboard_body(any_stage)
    shown = names.MetricName.PROCESSED_TRUE.value in body
    assert shown is any_stage.config.logs_record_outcomes
    explained = "No processed=true filter" in body
    assert explained is not any_stage.config.logs_record_outcomes
    if explained:
        assert f"logs at {any_stage.config.log_level}" in body
        assert names.MetricName.RECORDS_PROCESSED.value in body


def test_metric_filters_count_errors_by_type_and_processed_records(any_stage: SynthesizedStage) -> None:
    filters = list(any_stage.resources("observability", "AWS::Logs::MetricFilter").values())
    compute = any_stage.stage.compute
    by_metric: dict[str, set[str]] = {}
    for metric_filter in filters:
        props = metric_filter["Properties"]
        (transformation,) = props["MetricTransformations"]
        assert transformation["MetricNamespace"] == names.METRICS_NAMESPACE
        by_metric.setdefault(transformation["MetricName"], set()).add(any_stage.ref(props["LogGroupName"]))
        if transformation["MetricName"] == names.MetricName.ERRORS_BY_TYPE.value:
            # Only the lab's own error types, never the runtime's exception class (its JSON error
            # record also carries a top-level errorType), each of which would be a new metric.
            assert (
                props["FilterPattern"]
                == "{ " + " || ".join(f'($.errorType = "{kind.value}")' for kind in names.ErrorType) + " }"
            )
            assert transformation["Dimensions"] == [{"Key": "errorType", "Value": "$.errorType"}]
        else:
            assert props["FilterPattern"] == "{ $.processed IS TRUE }"
    assert by_metric == {
        names.MetricName.ERRORS_BY_TYPE.value: {
            any_stage.logical_id(fn.log_group) for fn in (compute.ingest, compute.worker, compute.redrive)
        },
        **(
            {names.MetricName.PROCESSED_TRUE.value: {any_stage.logical_id(compute.worker.log_group)}}
            if any_stage.config.logs_record_outcomes
            else {}
        ),
    }


def test_prod_has_no_processed_true_filter_and_dev_has(prod: SynthesizedStage, dev: SynthesizedStage) -> None:
    def metrics(stage: SynthesizedStage) -> set[str]:
        return {
            f["Properties"]["MetricTransformations"][0]["MetricName"]
            for f in stage.resources("observability", "AWS::Logs::MetricFilter").values()
        }

    assert names.MetricName.PROCESSED_TRUE.value not in metrics(prod)
    assert names.MetricName.PROCESSED_TRUE.value in metrics(dev)


def test_one_query_definition_per_insights_query_file(any_stage: SynthesizedStage) -> None:
    definitions = {
        d["Properties"]["Name"]: d["Properties"]
        for d in any_stage.resources("observability", "AWS::Logs::QueryDefinition").values()
    }
    # The local cloud's engine cannot create AWS::Logs::QueryDefinition (queryDefinitionsEnabled false).
    config = any_stage.config
    files = queries_for(config.log_level) if config.query_definitions_enabled else []
    assert set(definitions) == {f"{config.prefix}/{path.stem}" for path in files}
    functions = [
        "ingest",
        "worker",
        "relay",
        "redrive",
        "reset",
        *(["event-log"] if config.event_audit else []),
    ]
    for path in files:
        definition = definitions[f"{config.prefix}/{path.stem}"]
        assert definition["QueryString"] == path.read_text(encoding="utf-8").strip()
        assert sorted(definition["LogGroupNames"]) == sorted(
            f"/aws/lambda/{config.prefix}-{f}" for f in functions
        )


def test_prod_saves_only_the_queries_its_warning_lines_answer(
    prod: SynthesizedStage, dev: SynthesizedStage
) -> None:
    def saved(stage: SynthesizedStage) -> set[str]:
        return {
            d["Properties"]["Name"].split("/", 1)[1]
            for d in stage.resources("observability", "AWS::Logs::QueryDefinition").values()
        }

    assert saved(prod) == {"errors-by-error-type"}
    assert saved(dev) == {path.stem for path in query_files()}


def test_every_query_that_reads_info_lines_says_so() -> None:
    """The queries on the worker's INFO lines ("record processed", "duplicate of a processed key")
    and the redrive job's progress declare `# logLevel: INFO`; "record failed" is a WARNING."""
    needed = {path.stem: needed_log_level(path) for path in query_files()}
    assert needed == {
        "duplicates-detected": "INFO",
        "errors-by-error-type": "ERROR",
        "processed-true-rate": "INFO",
        "redrive-activity": "INFO",
        "slowest-records": "INFO",
    }


def test_a_query_declares_one_known_level_at_most(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("# logLevel: INFO (why)\nfields @timestamp")
    (tmp_path / "b.txt").write_text("fields @timestamp")
    (tmp_path / "c.txt").write_text("# logLevel: DEBUG\nfields @timestamp")
    assert [p.name for p in queries_for("WARNING", tmp_path)] == ["b.txt"]
    assert [p.name for p in queries_for("INFO", tmp_path)] == ["a.txt", "b.txt"]
    assert [p.name for p in queries_for("DEBUG", tmp_path)] == ["a.txt", "b.txt", "c.txt"]
    (tmp_path / "d.txt").write_text("# logLevel: VERBOSE\nfields @timestamp")
    with pytest.raises(ValueError, match=r"d\.txt: one `# logLevel"):
        queries_for("INFO", tmp_path)


def test_queries_are_deployed_outside_the_local_cloud(local: SynthesizedStage, dev: SynthesizedStage) -> None:
    assert not local.config.query_definitions_enabled
    assert dev.config.query_definitions_enabled


def test_query_files_are_the_txt_files_of_the_folder(tmp_path: Path) -> None:
    assert query_files(tmp_path / "missing") == []
    (tmp_path / "b-errors.txt").write_text("fields @timestamp")
    (tmp_path / "a-latency.txt").write_text("stats avg(latencyMs)")
    (tmp_path / "notes.md").write_text("not a query")
    assert [p.name for p in query_files(tmp_path)] == ["a-latency.txt", "b-errors.txt"]


def test_errors_by_type_counts_the_labs_error_lines_and_not_the_runtimes_error_records(
    any_stage: SynthesizedStage,
) -> None:
    """Through the local cloud's metric-filter evaluator, with the synthesized pattern."""
    patterns = {
        metric_filter["Properties"]["FilterPattern"]
        for metric_filter in any_stage.resources("observability", "AWS::Logs::MetricFilter").values()
        if metric_filter["Properties"]["MetricTransformations"][0]["MetricName"]
        == names.MetricName.ERRORS_BY_TYPE.value
    }
    (pattern,) = patterns
    ours = {"level": "ERROR", "message": "record failed", "errorType": names.ErrorType.TRANSIENT.value}
    # The Python runtime's record of an unhandled exception in the JSON log format.
    runtime = {"level": "ERROR", "errorMessage": "'x'", "errorType": "KeyError", "stackTrace": []}
    assert filter_matches(pattern, json.dumps(ours))
    assert not filter_matches(pattern, json.dumps(runtime))
