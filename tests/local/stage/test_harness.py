"""The harness on the deployed stage: `make lab`'s sample events (sent and followed through the
stage client) and its summary, and the outputs file the client's `local` target reads back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.common.names import Output, RecordStatus
from lab.harness.paths import StateDir
from lab.harness.samples import send_sample_events
from lab.harness.summary import summary
from stage_client.target import Target, load_local_target

if TYPE_CHECKING:
    from tests.local.conftest import LocalEngine


def test_sample_events_end_succeeded_and_are_shown_as_the_table_holds_them(local_target: Target) -> None:
    lines: list[str] = []
    rows = send_sample_events(local_target, 3, log=lines.append)
    assert [row["status"] for row in rows] == [RecordStatus.SUCCEEDED.value] * 3
    assert all(row["attempts"] == 1 for row in rows)
    assert lines[0].split() == ["idempotencyKey", "status", "attempts", "processedAt"]
    assert len(lines) == 4
    assert all(RecordStatus.SUCCEEDED.value in line for line in lines[1:])


def test_the_outputs_file_names_the_deployed_stage(local_target: Target, local_engine: LocalEngine) -> None:
    state = StateDir(local_engine.state.root)
    target = load_local_target(state.outputs_json)
    assert target == local_target
    assert target.output(Output.TABLE_NAME) == local_target.output(Output.TABLE_NAME)
    assert target.api_url.startswith(f"{target.endpoint_url}/_aws/execute-api/")
    text = summary(state)
    assert f"API          {target.api_url}" in text
    assert "IAM enforced" in text
