"""The local cloud's alarm evaluation and log-derived metrics (pure logic, no AWS)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from lab.localcloud.agent import oldest_message_age
from lab.localcloud.alarm_eval import (
    AlarmDefinition,
    breaches,
    evaluate,
    evaluation_window,
    metric_data_query,
    values_from_metric_data,
)
from lab.localcloud.log_metrics import FilterPatternError, emf_datums, filter_datums, filter_matches

NOW = 1_000_005.0  # 5 s into the period that starts at 1_000_000 (periods of 10 s)


def alarm(**overrides: Any) -> dict[str, Any]:
    base = {
        "AlarmName": "dlq-visible",
        "Namespace": "AWS/SQS",
        "MetricName": "ApproximateNumberOfMessagesVisible",
        "Dimensions": [{"Name": "QueueName", "Value": "dlq"}],
        "Statistic": "Maximum",
        "Period": 10,
        "EvaluationPeriods": 3,
        "Threshold": 0.0,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
        "StateValue": "INSUFFICIENT_DATA",
    }
    base.update(overrides)
    return base


def definition(**overrides: Any) -> AlarmDefinition:
    parsed = AlarmDefinition.from_describe(alarm(**overrides))
    assert parsed is not None
    return parsed


def test_window_is_the_last_complete_periods_aligned_to_the_period():
    assert evaluation_window(definition(), NOW) == (999_970, 1_000_000)


def test_datapoints_to_alarm_defaults_to_evaluation_periods():
    assert definition().datapoints_to_alarm == 3
    assert definition(DatapointsToAlarm=2).datapoints_to_alarm == 2


def test_alarm_when_every_period_breaches():
    decision = evaluate(definition(), {999_970: 1, 999_980: 2, 999_990: 1}, NOW)
    assert decision.state == "ALARM"
    assert decision.values == (1.0, 2.0, 1.0)


def test_ok_when_fewer_than_datapoints_to_alarm_breach():
    decision = evaluate(definition(), {999_970: 0, 999_980: 2, 999_990: 1}, NOW)
    assert decision.state == "OK"


def test_m_out_of_n():
    decision = evaluate(definition(DatapointsToAlarm=2), {999_970: 0, 999_980: 2, 999_990: 1}, NOW)
    assert decision.state == "ALARM"


def test_the_period_still_filling_is_not_judged():
    decision = evaluate(definition(EvaluationPeriods=1), {1_000_000: 50}, NOW)
    assert decision.state == "OK"  # no data in the last complete period; missing = notBreaching


@pytest.mark.parametrize(
    ("treat", "current", "expected"),
    [
        ("missing", "OK", "INSUFFICIENT_DATA"),
        ("notBreaching", "ALARM", "OK"),
        ("breaching", "OK", "ALARM"),
        ("ignore", "ALARM", "ALARM"),
        ("ignore", "OK", "OK"),
    ],
)
def test_no_datapoint_at_all_follows_treat_missing_data(treat, current, expected):
    decision = evaluate(definition(TreatMissingData=treat, StateValue=current), {}, NOW)
    assert decision.state == expected


def test_missing_periods_count_as_breaching_only_when_treated_so():
    partial = {999_990: 5.0}
    assert evaluate(definition(TreatMissingData="breaching"), partial, NOW).state == "ALARM"
    assert evaluate(definition(TreatMissingData="notBreaching"), partial, NOW).state == "OK"
    assert evaluate(definition(TreatMissingData="missing"), partial, NOW).state == "OK"


@pytest.mark.parametrize(
    ("comparison", "value", "expected"),
    [
        ("GreaterThanThreshold", 10, False),
        ("GreaterThanThreshold", 10.5, True),
        ("GreaterThanOrEqualToThreshold", 10, True),
        ("LessThanThreshold", 10, False),
        ("LessThanThreshold", 9, True),
        ("LessThanOrEqualToThreshold", 10, True),
    ],
)
def test_comparison_operators(comparison, value, expected):
    assert breaches(value, comparison, 10) is expected


def test_anomaly_band_comparisons_are_refused():
    with pytest.raises(ValueError, match="LessThanLowerThreshold"):
        breaches(1, "LessThanLowerThreshold", 0)


def test_decision_reports_a_change_only_when_the_state_differs():
    current = definition(StateValue="ALARM")
    assert not evaluate(current, {999_970: 1, 999_980: 1, 999_990: 1}, NOW).changes(current)
    assert evaluate(current, {999_970: 0, 999_980: 0, 999_990: 0}, NOW).changes(current)


def test_metric_math_alarms_are_not_evaluated():
    math_alarm = alarm(Metrics=[{"Id": "e1", "Expression": "m1 + m2"}, {"Id": "m1"}, {"Id": "m2"}])
    del math_alarm["MetricName"], math_alarm["Namespace"]
    assert AlarmDefinition.from_describe(math_alarm) is None


def test_single_metric_stat_query_is_evaluated_like_a_plain_alarm():
    query = {
        "Id": "m1",
        "ReturnData": True,
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/Lambda",
                "MetricName": "Errors",
                "Dimensions": [{"Name": "FunctionName", "Value": "w"}],
            },
            "Period": 10,
            "Stat": "Sum",
        },
    }
    stat_alarm = alarm(Metrics=[query])
    del stat_alarm["MetricName"], stat_alarm["Namespace"], stat_alarm["Statistic"]
    parsed = AlarmDefinition.from_describe(stat_alarm)
    assert parsed is not None
    assert (parsed.namespace, parsed.metric_name, parsed.statistic) == ("AWS/Lambda", "Errors", "Sum")
    assert parsed.dimensions == (("FunctionName", "w"),)


# --- ApproximateAgeOfOldestMessage ----------------------------------------------------------
def test_age_of_an_empty_queue_is_zero():
    assert oldest_message_age([], now=100.0) == 0.0


def test_age_is_that_of_the_oldest_message():
    messages = [{"SentTimestamp": 70, "ReceiveCount": 0}, {"SentTimestamp": 40, "ReceiveCount": 1}]
    assert oldest_message_age(messages, now=100.0) == 60.0


def test_messages_received_three_times_no_longer_count_for_the_age():
    messages = [{"SentTimestamp": 10, "ReceiveCount": 3}, {"SentTimestamp": 70, "ReceiveCount": 2}]
    assert oldest_message_age(messages, now=100.0) == 30.0
    assert oldest_message_age(messages[:1], now=100.0) == 90.0


# --- Embedded metric format ----------------------------------------------------------------
def emf_line(**values: Any) -> str:
    record = {
        "_aws": {
            "Timestamp": 1_700_000_000_000,
            "CloudWatchMetrics": [
                {
                    "Namespace": "IngestionLab",
                    "Dimensions": [["service"]],
                    "Metrics": [{"Name": "RedriveMessagesQuarantined", "Unit": "Count"}],
                }
            ],
        },
        "service": "ingestion-lab",
        **values,
    }
    return json.dumps(record)


def test_emf_line_becomes_one_datum_per_value_and_dimension_set():
    (datum,) = emf_datums(emf_line(RedriveMessagesQuarantined=2), 0)
    assert (datum.namespace, datum.name, datum.value, datum.unit) == (
        "IngestionLab",
        "RedriveMessagesQuarantined",
        2.0,
        "Count",
    )
    assert datum.dimensions == (("service", "ingestion-lab"),)
    assert datum.timestamp_ms == 1_700_000_000_000
    assert [d.value for d in emf_datums(emf_line(RedriveMessagesQuarantined=[1, 4]), 0)] == [1.0, 4.0]


def test_lines_without_emf_metadata_give_nothing():
    assert emf_datums('{"level": "INFO", "message": "hello"}', 0) == []
    assert emf_datums("START RequestId: 1 Version: $LATEST", 0) == []


# --- Metric filters ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pattern", "line", "matches"),
    [
        ('{ $.errorType = "*" }', '{"errorType": "SchemaValidationError"}', True),
        ('{ $.errorType = "*" }', '{"message": "ok"}', False),
        ("{ $.processed IS TRUE }", '{"processed": true}', True),
        ("{ $.processed IS TRUE }", '{"processed": "true"}', False),
        ('{ $.level = "ERR*" }', '{"level": "ERROR"}', True),
        ("{ $.latencyMs > 100 && $.processed IS TRUE }", '{"latencyMs": 150, "processed": true}', True),
        ("{ $.latencyMs > 100 && $.processed IS TRUE }", '{"latencyMs": 50, "processed": true}', False),
        ("{ ($.a = 1 || $.b = 2) && $.c NOT EXISTS }", '{"b": 2}', True),
        ('{ $.a.b[0] != "x" }', '{"a": {"b": ["y"]}}', True),
        ("{ $.processed IS TRUE }", "2026-11-28T08:00:00Z\treq\tINFO\t" + '{"processed": true}', True),
        ("ERROR", "an ERROR happened", True),
        ('"Task timed out"', "Task timed out after 3.00 seconds", True),
        ("?ERROR ?WARN", "a WARN line", True),
        ("ERROR -retry", "ERROR will retry", False),
        ("", "anything", True),
    ],
)
def test_filter_patterns(pattern, line, matches):
    assert bool(filter_matches(pattern, line)) is matches


def test_unsupported_filter_pattern_is_reported():
    with pytest.raises(FilterPatternError):
        filter_matches("{ $.a ~~ 1 }", '{"a": 1}')


def test_metric_filter_takes_value_and_dimensions_from_the_record():
    metric_filter = {
        "filterPattern": '{ $.errorType = "*" }',
        "metricTransformations": [
            {
                "metricNamespace": "IngestionLab",
                "metricName": "ErrorsByType",
                "metricValue": "1",
                "dimensions": {"errorType": "$.errorType"},
            }
        ],
    }
    events = [
        {"timestamp": 5, "message": '{"errorType": "SchemaValidationError"}'},
        {"timestamp": 6, "message": '{"message": "fine"}'},
    ]
    (datum,) = filter_datums(metric_filter, events)
    assert (datum.name, datum.value, datum.dimensions, datum.timestamp_ms) == (
        "ErrorsByType",
        1.0,
        (("errorType", "SchemaValidationError"),),
        5,
    )


def test_an_alarm_is_queried_as_one_metric_stat_of_its_own_metric_period_and_statistic():
    parsed = definition(Statistic=None, ExtendedStatistic="p99")
    query = metric_data_query(parsed, "alarm3")
    assert query["Id"] == "alarm3"
    assert query["MetricStat"] == {
        "Metric": {
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [{"Name": "QueueName", "Value": "dlq"}],
        },
        "Period": 10,
        "Stat": "p99",
    }


def test_metric_data_values_are_aligned_to_the_alarm_period():
    parsed = definition(Statistic="Sum", DatapointsToAlarm=2)
    timestamps = [datetime.fromtimestamp(999_980, UTC), datetime.fromtimestamp(999_995, UTC)]
    assert values_from_metric_data(parsed, timestamps, [3.0, 1.0]) == {999_980: 3.0, 999_990: 1.0}
    assert evaluate(parsed, values_from_metric_data(parsed, timestamps, [3.0, 1.0]), NOW).state == "ALARM"
