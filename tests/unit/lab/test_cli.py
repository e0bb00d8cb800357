"""The `lab` command line: parsing, exit statuses and JSON output, against moto via --target env."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from functions.common.names import FAILURE_MODE_PARAMETER, STATE_TABLE_PARTITION_KEY, Output
from lab import cli, commands
from lab.gamedays import GamedayResult
from lab.gamedays.drills import DRILLS


@pytest.fixture
def env_target(stage: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Outputs as environment variables (what a pipeline step gets), AWS calls answered by moto."""
    outputs = {
        Output.API_URL: "http://127.0.0.1:9",
        Output.QUEUE_URL: stage.queue_url,
        Output.DLQ_URL: stage.dlq_url,
        Output.QUARANTINE_QUEUE_URL: stage.quarantine_url,
        Output.TABLE_NAME: stage.table_name,
        Output.EVENT_AUDIT_QUEUE_URL: stage.event_capture_url,
    }
    for key, value in outputs.items():
        monkeypatch.setenv(key.value, value)
    return stage


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(argv)
    return code, capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["--json", "--target", "env", "status"],
        ["status", "--json", "--target", "env"],
        ["--target", "env", "status", "--json"],
    ],
)
def test_global_options_work_before_or_after_the_command(argv: list[str]) -> None:
    args = cli.build_parser().parse_args(argv)
    assert (args.json, args.target, args.command) == (True, "env", "status")


def test_failure_mode_set_get_reset(env_target: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(
        ["--target", "env", "--json", "failure-mode", "set", "poison_payload", "--ttl", "60"], capsys
    )
    assert code == 0
    state = json.loads(out)
    assert (state["mode"], state["effective"]) == ("poison_payload", "poison_payload")
    stored = json.loads(env_target.ssm.get_parameter(Name=FAILURE_MODE_PARAMETER)["Parameter"]["Value"])
    assert 0 < stored["expiresAt"] - stored.get("setAt", stored["expiresAt"] - 60) <= 60
    code, out = run(["--target", "env", "failure-mode", "get"], capsys)
    assert code == 0
    assert "effective 'poison_payload'" in out
    code, out = run(["--target", "env", "failure-mode", "reset"], capsys)
    assert (code, "effective 'none'" in out) == (0, True)


def test_failure_mode_set_refuses_unknown_modes_and_long_ttls(
    env_target: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as unknown:
        cli.main(["--target", "env", "failure-mode", "set", "melt"])
    assert unknown.value.code == 2
    code, out = run(["--target", "env", "failure-mode", "set", "poison_payload", "--ttl", "86400"], capsys)
    assert code == 2
    assert "TTL" in out
    assert env_target.ssm.get_parameter(Name=FAILURE_MODE_PARAMETER)["Parameter"]["Value"] == "none"


def test_status_json(env_target: Any, capsys: pytest.CaptureFixture[str]) -> None:
    env_target.sqs.send_message(QueueUrl=env_target.dlq_url, MessageBody="x")
    code, out = run(["--target", "env", "--json", "status"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["queues"]["dlq"]["visible"] == 1
    assert data["failureMode"]["effective"] == "none"


def test_status_human(env_target: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(["--target", "env", "status"], capsys)
    assert code == 0
    assert "queues:" in out
    assert "records: none" in out


def test_verify_exit_status_follows_the_invariants(
    env_target: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("k-1", "k-2"):
        env_target.dynamodb.put_item(
            TableName=env_target.table_name,
            Item={STATE_TABLE_PARTITION_KEY: {"S": key}, "status": {"S": "SUCCEEDED"}},
        )
    keys = tmp_path / "keys.txt"
    keys.write_text("k-1\nk-2\n")
    code, out = run(
        ["--target", "env", "--json", "verify", "--keys-file", str(keys), "--timeout", "1"], capsys
    )
    assert code == 0
    assert json.loads(out)["ok"] is True
    keys.write_text("k-1\nk-3\n")
    code, out = run(["--target", "env", "verify", "--keys-file", str(keys), "--timeout", "1"], capsys)
    assert code == 1
    assert "missing       k-3" in out
    assert "FAIL: 1/2 SUCCEEDED" in out


def test_an_unresolvable_target_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(Output.API_URL.value, raising=False)
    code, out = run(["--target", "env", "status"], capsys)
    assert code == 2
    assert "ApiUrl" in out


def test_gameday_fis_on_the_local_cloud_is_refused(
    env_target: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    code, out = run(["--target", "env", "gameday", "slow-downstream", "--injector", "fis"], capsys)
    assert code == 2
    assert "FIS is AWS-only" in out
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    assert env_target.ssm.get_parameter(Name=FAILURE_MODE_PARAMETER)["Parameter"]["Value"] == "none"


def test_redrive_start_requires_valid_error_types() -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["redrive", "start", "--error-type", "Whatever"])
    args = cli.build_parser().parse_args(
        ["redrive", "start", "--error-type", "SchemaValidationError", "--wait"]
    )
    assert (args.action, args.error_type, args.wait, args.jitter) == (
        "start",
        "SchemaValidationError",
        True,
        5,
    )


def test_env_prints_a_target_that_env_reads_back(
    env_target: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LAB_API_KEY", "k 1")
    code, out = run(["--target", "env", "env"], capsys)
    assert code == 0
    lines = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines())
    assert lines[Output.QUEUE_URL.value] == env_target.queue_url
    assert lines["LAB_API_KEY"] == "'k 1'"  # shell-quoted
    assert "AWS_ENDPOINT_URL" not in lines  # a deployed stage keeps the caller's own credentials
    code, out = run(["--target", "env", "--json", "env"], capsys)
    assert json.loads(out)[Output.TABLE_NAME.value] == env_target.table_name


def fake_results(outcomes: dict[str, str], tmp_path: Path) -> Any:
    calls: list[tuple[str, str]] = []

    def fake_run_gameday(target: Any, name: str, *, injector: str, **_: Any) -> GamedayResult:
        calls.append((name, injector))
        outcome = outcomes.get(name, "passed")
        report = {"elapsedSeconds": 1.0, "drill": name}
        return GamedayResult(
            name, outcome, None if outcome == "passed" else "boom", report, tmp_path, tmp_path
        )

    return calls, fake_run_gameday


def test_gameday_all_runs_every_drill_and_exits_with_the_worst_outcome(
    env_target: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls, fake = fake_results({"random-fail-p30": "failed"}, tmp_path)
    monkeypatch.setattr(commands, "run_gameday", fake)
    code, out = run(["--target", "env", "--json", "gameday", "all"], capsys)
    assert code == 1
    assert [name for name, _ in calls] == list(DRILLS)
    summary = json.loads(out)["drills"]
    assert [(d["drill"], d["outcome"]) for d in summary if d["outcome"] != "passed"] == [
        ("random-fail-p30", "failed")
    ]


def test_gameday_all_stops_at_an_interruption_and_with_fis_runs_only_fis_drills(
    env_target: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls, fake = fake_results({"slow-downstream": "interrupted"}, tmp_path)
    monkeypatch.setattr(commands, "run_gameday", fake)
    code, _ = run(["--target", "env", "gameday", "all"], capsys)
    assert code == 130
    assert [name for name, _ in calls] == ["poison-pill", "slow-downstream"]
    fis_calls, fis_fake = fake_results({}, tmp_path)
    monkeypatch.setattr(commands, "run_gameday", fis_fake)
    code, _ = run(["--target", "env", "gameday", "all", "--injector", "fis"], capsys)
    assert code == 0
    assert fis_calls == [("slow-downstream", "fis"), ("random-fail-p30", "fis")]


@pytest.mark.parametrize("value", ["DownstreamTimeoutError,none", " none , SchemaValidationError "])
def test_redrive_filters_take_several_error_types_and_none(value: str) -> None:
    """What a killed batch returned: the record that timed out and its neighbours with no error type."""
    args = cli.build_parser().parse_args(["redrive", "preview", "--error-type", value])
    assert set(args.error_type.split(",")) == {part.strip() for part in value.split(",")}


@pytest.mark.parametrize("value", ["", ",", "none,Whatever"])
def test_redrive_filters_refuse_an_unknown_or_empty_error_type(value: str) -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["redrive", "start", "--error-type", value])


# --- A stage without the event audit queue (eventAudit false: prod) -------------------------------


@pytest.fixture
def no_audit_target(env_target: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv(Output.EVENT_AUDIT_QUEUE_URL.value)
    return env_target


def test_verify_count_events_on_a_stage_without_the_audit_queue_names_the_key(
    no_audit_target: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("k-1\n")
    argv = ["--target", "env", "verify", "--keys-file", str(keys), "--timeout", "60", "--count-events"]
    code, out = run(argv, capsys)
    assert code == 2
    assert out.startswith("error: verifying with --count-events counts IngestionSuccess/IngestionFailure")
    assert "eventAudit false" in out
    assert "eventAudit true" in out
    assert "Traceback" not in out
    # Without --count-events the same stage verifies as before (k-1 has no record: FAIL, not an error).
    code, out = run(["--target", "env", "verify", "--keys-file", str(keys), "--timeout", "1"], capsys)
    assert (code, "FAIL: 0/1 SUCCEEDED" in out) == (1, True)


@pytest.mark.parametrize("drill", sorted(name for name, spec in DRILLS.items() if spec.counts_events))
def test_gamedays_that_count_events_refuse_a_stage_without_the_audit_queue(
    no_audit_target: Any, drill: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(["--target", "env", "--json", "gameday", drill], capsys)
    assert code == 2
    error = json.loads(out)["error"]
    assert f"gameday {drill} counts" in error
    assert "eventAudit false" in error
    assert no_audit_target.ssm.get_parameter(Name=FAILURE_MODE_PARAMETER)["Parameter"]["Value"] == "none"


def test_gameday_all_refuses_before_any_drill_runs(
    no_audit_target: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls, fake = fake_results({}, tmp_path)
    monkeypatch.setattr(commands, "run_gameday", fake)
    code, out = run(["--target", "env", "gameday", "all"], capsys)
    assert (code, calls) == (2, [])
    counting = sorted(name for name, spec in DRILLS.items() if spec.counts_events)
    assert set(counting) == {"duplicate-submit", "poison-pill", "random-fail-p30", "slow-downstream"}
    assert out.startswith("refused: gameday ")
    assert all(name in out for name in counting)
