"""The configuration tables of docs/configuration.md are generated from the models and never drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import StageConfig
from app.config.doc import CONFIGURATION_DOC, load_model, main, render, render_table
from pipeline.config import PipelineConfig
from tests import REPO_ROOT


def test_the_committed_tables_match_the_models() -> None:
    assert main(["--check", str(CONFIGURATION_DOC)]) == 0, "run `make docs` and commit docs/configuration.md"


def test_make_docs_and_the_check_default_to_the_configuration_document() -> None:
    assert CONFIGURATION_DOC == REPO_ROOT / "docs" / "configuration.md"
    assert main(["--check"]) == 0
    assert "-m app.config.doc docs/configuration.md" in (REPO_ROOT / "Makefile").read_text()


def test_the_document_shows_the_stage_and_the_pipeline_models() -> None:
    text = CONFIGURATION_DOC.read_text(encoding="utf-8")
    assert render_table(StageConfig) in text
    assert render_table(PipelineConfig) in text


def test_a_stale_table_fails_the_check_and_is_rewritten(tmp_path: Path) -> None:
    document = tmp_path / "doc.md"
    document.write_text(
        "intro\n<!-- config-table app.config:StageConfig -->\n| stale |\n<!-- end config-table -->\nafter\n"
    )
    assert main(["--check", str(document)]) == 1
    assert "| stale |" in document.read_text()
    assert main([str(document)]) == 0
    assert document.read_text() == render(document.read_text())
    assert main(["--check", str(document)]) == 0
    assert document.read_text().startswith("intro\n")
    assert document.read_text().endswith("after\n")


def test_every_key_appears_once_with_its_default_bounds_and_meaning() -> None:
    table = render_table(StageConfig)
    rows = {line.split(" | ")[0].strip("| `"): line for line in table.splitlines()[2:]}
    assert len(rows) == len(table.splitlines()) - 2
    assert (
        rows["maxReceiveCount"]
        == "| `maxReceiveCount` | 5 | 1..1000 | receives before a message goes to the DLQ |"
    )
    assert "| `authMode` | `apiKey` | `none`, `apiKey`, `jwt` |" in rows["authMode"]
    assert rows["alarms.periodSeconds"].startswith("| `alarms.periodSeconds` | 60 | 10..86400 |")
    assert rows["account"].startswith("| `account` | required | a 12-digit AWS account id |")
    assert rows["corsAllowedOrigins"].startswith(
        "| `corsAllowedOrigins` | [] | a list of: https://host[:port]"
    )
    assert all(StageConfig.model_fields[name].description for name in StageConfig.model_fields)


def test_a_marker_must_name_a_configuration_model() -> None:
    assert load_model("pipeline.config:LoadTestSettings").__name__ == "LoadTestSettings"
    with pytest.raises(TypeError, match="not a configuration model"):
        load_model("app.config.doc:Path")
