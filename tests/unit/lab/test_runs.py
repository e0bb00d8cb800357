"""Run files: what `lab send` and the drills sent, read back by `lab verify` and `lab send --duplicate-of`."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import runs
from stage_client.send import SendError, SentEvent, new_run_id, sample_payload


def test_a_run_file_reads_back_as_sent_and_as_a_keys_file(tmp_path: Path) -> None:
    run_id = new_run_id()
    sent = [
        SentEvent(f"key-{index}", f"message-{index}", 202, sample_payload(run_id, index))
        for index in range(12)
    ]
    sent.append(SentEvent("key-dup", "m1", 202, sample_payload(run_id, 12), duplicate_message_id="m2"))
    path = runs.save_run(run_id, sent, runs_dir=tmp_path)
    loaded = runs.load_run(run_id, runs_dir=tmp_path)
    assert loaded == sent
    assert runs.read_keys_file(path) == [event.idempotency_key for event in sent]
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# keys\nabc\n\ndef\n")
    assert runs.read_keys_file(keys_file) == ["abc", "def"]


def test_runs_go_to_the_state_dir_unless_redirected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(runs.RUNS_DIR_ENV, raising=False)
    monkeypatch.setenv("LAB_STATE_DIR", str(tmp_path / "state"))
    assert runs.default_runs_dir() == tmp_path / "state" / "runs"
    monkeypatch.setenv(runs.RUNS_DIR_ENV, str(tmp_path / "elsewhere"))
    assert runs.default_runs_dir() == tmp_path / "elsewhere"


def test_load_run_names_the_missing_run(tmp_path: Path) -> None:
    with pytest.raises(SendError, match="no run 'nope'"):
        runs.load_run("nope", runs_dir=tmp_path)
