"""`lab dashboard`: a stage on AWS gets its console URL for the chosen range; bad ranges exit 2."""

from __future__ import annotations

import json

import pytest

from functions.common.names import Output
from lab import cli

CONSOLE = "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1"


@pytest.fixture
def aws_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    """--target env describing a stage on AWS (no endpoint override), as a pipeline step sees it."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv(Output.API_URL.value, "https://abc.execute-api.eu-west-1.amazonaws.com/")
    monkeypatch.setenv(Output.DASHBOARD_NAME.value, "ingestion-dev-dashboard")


def test_a_stage_on_aws_gets_its_console_url(aws_stage: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--target", "env", "dashboard", "--range", "1h"]) == 0
    assert (
        capsys.readouterr().out.strip()
        == f"{CONSOLE}#dashboards/dashboard/ingestion-dev-dashboard?start=PT1H"
    )
    assert (
        cli.main(
            [
                "--target",
                "env",
                "--json",
                "dashboard",
                "--start",
                "2026-11-02T10:00:00Z",
                "--end",
                "2026-11-02T10:20:00Z",
            ]
        )
        == 0
    )
    answer = json.loads(capsys.readouterr().out)
    assert answer["url"].endswith("?start=2026-11-02T10:00:00Z&end=2026-11-02T10:20:00Z")
    assert answer["dashboard"] == "ingestion-dev-dashboard"


def test_a_window_needs_both_ends(aws_stage: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--target", "env", "dashboard", "--start", "2026-11-02T10:00:00Z"]) == 2
    assert "--start and --end go together" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["dashboard", "--start", "yesterday"], ["dashboard", "--range", "2d"]])
def test_what_is_not_a_range_is_refused_by_the_parser(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(argv)
    assert exit_info.value.code == 2
