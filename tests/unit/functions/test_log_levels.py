"""The functions' log level with Lambda's advanced logging controls on: POWERTOOLS_LOG_LEVEL decides
which lines a function writes, and the EMF metric lines still pass (docs/performance.md#cost)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from functions.common.names import METRICS_NAMESPACE, EnvVar, MetricName
from tests import REPO_ROOT

# What Lambda sets when a function's ApplicationLogLevel is INFO (AWS Lambda Developer Guide,
# "Log-level filtering": Lambda passes the application log level to the runtime in this variable).
ALC_LEVEL = "AWS_LAMBDA_LOG_LEVEL"

EMIT = f"""
from functions.common.observability import count, logger, metrics
from functions.common.names import MetricName
logger.info("an info line")
logger.warning("a warning line")
count(MetricName.{MetricName.EVENTS_ACCEPTED.name})
metrics.flush_metrics()
"""

PLAIN_POWERTOOLS = """
from aws_lambda_powertools import Logger
logger = Logger(service="probe")
logger.info("an info line")
logger.warning("a warning line")
"""


def run(code: str, **env: str) -> list[dict[str, object]]:
    """Run `code` in a fresh interpreter (the logger is built at import) and parse its JSON lines."""
    clean = {k: v for k, v in os.environ.items() if k not in (ALC_LEVEL, EnvVar.POWERTOOLS_LOG_LEVEL.value)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def messages(lines: list[dict[str, object]]) -> list[object]:
    return [line.get("message") for line in lines if "message" in line]


def test_powertools_alone_lets_the_lambda_level_win_over_its_own() -> None:
    """The premise: with ALC at INFO, Powertools logs INFO although POWERTOOLS_LOG_LEVEL is WARNING."""
    lines = run(PLAIN_POWERTOOLS, **{ALC_LEVEL: "INFO", EnvVar.POWERTOOLS_LOG_LEVEL.value: "WARNING"})
    assert messages(lines) == ["an info line", "a warning line"]


@pytest.mark.parametrize("alc", ["INFO", None])
def test_a_warning_stage_writes_no_info_line_and_keeps_its_metrics(alc: str | None) -> None:
    env = {EnvVar.POWERTOOLS_LOG_LEVEL.value: "WARNING", **({ALC_LEVEL: alc} if alc else {})}
    lines = run(EMIT, **env)
    assert messages(lines) == ["a warning line"]
    emf = [line for line in lines if "_aws" in line]
    assert len(emf) == 1
    assert "level" not in emf[0]  # Lambda gives it INFO, so ApplicationLogLevel must stay INFO
    assert emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == METRICS_NAMESPACE  # type: ignore[index]
    assert emf[0][MetricName.EVENTS_ACCEPTED.value] == [1.0]


@pytest.mark.parametrize(("level", "expected"), [("INFO", ["an info line", "a warning line"]), ("ERROR", [])])
def test_the_configured_level_is_the_least_level_written(level: str, expected: list[str]) -> None:
    assert messages(run(EMIT, **{ALC_LEVEL: "INFO", EnvVar.POWERTOOLS_LOG_LEVEL.value: level})) == expected


# What the Python runtime does at start with advanced logging controls on (AWS Lambda Developer
# Guide, "Using Lambda advanced logging controls with Python"): the root logger at the application
# log level, with a handler writing each record as a JSON line; then the handler module is imported.
RUNTIME_THEN_IMPORT = """
import json, logging, os, sys
class JsonLine(logging.Formatter):
    def format(self, record):
        return json.dumps({"level": record.levelname, "logger": record.name, "message": record.getMessage()})
handler = logging.StreamHandler(sys.stdout)
handler.setFormatter(JsonLine())
logging.getLogger().addHandler(handler)
logging.getLogger().setLevel(os.environ["AWS_LAMBDA_LOG_LEVEL"])
import functions.common.observability
logging.getLogger("botocore.endpoint").debug("Sending http request: X-Amz-Security-Token: FAKE-TOKEN")
logging.getLogger("botocore.credentials").info("Found credentials in environment variables.")
logging.getLogger("botocore.retryhandler").warning("a library warning")
"""


@pytest.mark.parametrize("level", ["DEBUG", "INFO"])
def test_the_libraries_log_no_request_and_no_credential_lookup_at_any_stage_level(level: str) -> None:
    lines = run(RUNTIME_THEN_IMPORT, **{ALC_LEVEL: level, EnvVar.POWERTOOLS_LOG_LEVEL.value: level})
    assert messages(lines) == ["a library warning"]


def test_timestamps_are_rfc_3339_so_that_lambda_filters_the_lines_by_their_level() -> None:
    lines = run(EMIT, **{EnvVar.POWERTOOLS_LOG_LEVEL.value: "WARNING"})
    (line,) = [line for line in lines if "level" in line]
    # RFC 3339: date "T" time with an offset (Lambda assigns INFO to a line without a valid one).
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)", str(line["timestamp"]))
    assert line["level"] == "WARNING"
