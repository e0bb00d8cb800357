"""The package boundaries that keep each part changeable on its own:
- lab/localcloud is an emulator layer usable for any stage: nothing from functions/ (the stage's
  code), stage_client/ (a client of this stage) or the rest of lab/ (harness, gamedays, CLI);
- stage_client/ is shared by lab, loadtest and the pipeline's steps: it imports no tool folder;
- loadtest/ reaches the stage through stage_client only, never lab/."""

from __future__ import annotations

from pathlib import Path

from tests import REPO_ROOT
from tests.unit.imports import imports_in, violations

LOCALCLOUD = REPO_ROOT / "lab" / "localcloud"


def test_the_local_cloud_imports_no_stage_code_client_or_lab_tool() -> None:
    assert (
        violations(LOCALCLOUD, ["functions", "stage_client", "lab", "app"], allowed=["lab.localcloud"]) == []
    )


def test_the_stage_client_imports_no_tool_folder() -> None:
    assert violations(REPO_ROOT / "stage_client", ["lab", "loadtest", "app", "pipeline"]) == []


def test_the_load_test_imports_nothing_from_lab() -> None:
    assert violations(REPO_ROOT / "loadtest", ["lab"]) == []


def test_the_checks_see_what_they_police() -> None:
    """The walker finds the imports these boundaries are about, so an empty list means something."""
    local = {item.module for item in imports_in(LOCALCLOUD)}
    assert {"lab.localcloud.engine", "lab.localcloud.alarm_eval", "boto3"} <= local
    assert "stage_client.target" in {item.module for item in imports_in(REPO_ROOT / "loadtest")}


def test_a_forbidden_import_is_reported_in_every_form(tmp_path: Path) -> None:
    package = tmp_path / "localcloud"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "inner" / "__init__.py").write_text("from .. import helpers\n")
    (package / "helpers.py").write_text(
        "import functions.common.names\n"
        "from stage_client import target\n"
        "def late():\n"
        "    from functions.worker import handler\n"
    )
    (package / "fine.py").write_text("import json\nfrom .helpers import late\n")
    found = violations(package, ["functions", "stage_client"])
    assert found == [
        f"{package / 'helpers.py'}:1 imports functions.common.names",
        f"{package / 'helpers.py'}:2 imports stage_client",
        f"{package / 'helpers.py'}:2 imports stage_client.target",
        f"{package / 'helpers.py'}:4 imports functions.worker",
        f"{package / 'helpers.py'}:4 imports functions.worker.handler",
    ]
    assert {item.module for item in imports_in(package)} >= {"localcloud.helpers", "localcloud.helpers.late"}
