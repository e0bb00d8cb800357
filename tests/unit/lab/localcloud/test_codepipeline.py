"""The local CodePipeline's pieces that need no engine: reading a declaration (run orders, variables,
buildspecs, intrinsic functions), CodeBuild's phase transitions, the structure rules the engine
enforces on a pipeline, and the stage locks of SUPERSEDED mode."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from lab.localcloud.codepipeline.actions import VariableError, resolve_variables
from lab.localcloud.codepipeline.assembly import Resolver
from lab.localcloud.codepipeline.codebuild import (
    BuildRequest,
    collect_artifacts,
    refuse_unsupported,
    run_build,
)
from lab.localcloud.codepipeline.execution import ExecutionRecord, PipelineHome
from lab.localcloud.codepipeline.model import (
    BuildProject,
    DeclarationError,
    Pipeline,
    artifact_path,
    capabilities,
)
from lab.localcloud.engine_patches.pipeline_store import structure_errors


def action(name: str, category: str, provider: str, run_order: int = 1, **extra: object) -> dict[str, object]:
    return {
        "Name": name,
        "ActionTypeId": {"Category": category, "Owner": "AWS", "Provider": provider, "Version": "1"},
        "RunOrder": run_order,
        **extra,
    }


DECLARATION: dict[str, Any] = {
    "Name": "demo",
    "RoleArn": "arn:aws:iam::333333333333:role/pipeline",
    "PipelineType": "V2",
    "RestartExecutionOnUpdate": True,
    "Stages": [
        {
            "Name": "Source",
            "Actions": [
                action("Src", "Source", "CodeStarSourceConnection", OutputArtifacts=[{"Name": "Code"}])
            ],
        },
        {
            "Name": "Dev",
            "Actions": [
                action("api.Prepare", "Deploy", "CloudFormation", 1, InputArtifacts=[{"Name": "Code"}]),
                action("api.Deploy", "Deploy", "CloudFormation", 2, Namespace="Api"),
                action("web.Deploy", "Deploy", "CloudFormation", 2),
                action(
                    "Smoke",
                    "Build",
                    "CodeBuild",
                    3,
                    InputArtifacts=[{"Name": "Code"}],
                    Configuration={
                        "ProjectName": "smoke",
                        "EnvironmentVariables": json.dumps(
                            [{"name": "ApiUrl", "type": "PLAINTEXT", "value": "#{Api.ApiUrl}"}]
                        ),
                    },
                ),
            ],
        },
    ],
}


def test_a_declaration_reads_as_stages_of_run_order_groups() -> None:
    pipeline = Pipeline.from_declaration(DECLARATION)
    assert (pipeline.name, pipeline.pipeline_type, pipeline.restart_on_update) == ("demo", "V2", True)
    # V2 pipelines default to SUPERSEDED when the declaration names no mode.
    assert pipeline.execution_mode == "SUPERSEDED"
    groups = [[a.name for a in group] for group in pipeline.stage("Dev").run_groups()]
    assert groups == [["api.Prepare"], ["api.Deploy", "web.Deploy"], ["Smoke"]]
    smoke = pipeline.stage("Dev").action("Smoke")
    assert smoke.project_name == "smoke"
    assert [(v.name, v.value) for v in smoke.environment_variables()] == [("ApiUrl", "#{Api.ApiUrl}")]
    assert [a.name for a in pipeline.source_actions] == ["Src"]
    with pytest.raises(DeclarationError):
        pipeline.stage("Prod")


def test_variables_resolve_from_earlier_namespaces_and_a_missing_one_fails_the_action() -> None:
    variables = {"Api": {"ApiUrl": "http://api"}, "codepipeline": {"PipelineExecutionId": "e1"}}
    assert (
        resolve_variables("#{Api.ApiUrl}/events in #{codepipeline.PipelineExecutionId}", variables)
        == "http://api/events in e1"
    )
    with pytest.raises(VariableError, match=r"#\{Api.Missing\}"):
        resolve_variables("#{Api.Missing}", variables)


def test_the_resolver_fixes_what_a_template_fixes_and_refuses_the_rest() -> None:
    resolve = Resolver(account="111111111111", region="eu-west-1", resources=frozenset({"Project"}))
    role = {
        "Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::", {"Ref": "AWS::AccountId"}, ":role/x"]]
    }
    assert resolve(role) == "arn:aws:iam::111111111111:role/x"
    assert resolve({"Ref": "Project"}) == "Project"
    assert resolve({"Fn::GetAtt": ["Role", "Arn"]}) == "Role.Arn"
    assert resolve([{"Ref": "AWS::Region"}, "plain"]) == ["eu-west-1", "plain"]
    with pytest.raises(DeclarationError):
        resolve({"Ref": "SomethingElse"})


def test_a_project_holds_its_buildspec_or_names_a_file() -> None:
    inline = BuildProject.from_properties(
        "p",
        {
            "Source": {
                "BuildSpec": json.dumps(
                    {"version": "0.2", "phases": {"build": {"commands": ["make"]}}}, indent=2
                )
            },
            "Environment": {"EnvironmentVariables": [{"Name": "A", "Type": "PLAINTEXT", "Value": "1"}]},
        },
    )
    assert inline.inline_buildspec == {"version": "0.2", "phases": {"build": {"commands": ["make"]}}}
    # CodeBuild's default timeout when the project sets none.
    assert inline.timeout_minutes == 60
    filed = BuildProject.from_api(
        {"name": "p", "source": {"buildspec": "buildspec-x.yaml"}, "timeoutInMinutes": 30}
    )
    assert (filed.inline_buildspec, filed.timeout_minutes) == (None, 30)


def test_artifact_references_and_capabilities() -> None:
    assert artifact_path("Synth_Output::assembly-X/stack.template.json") == (
        "Synth_Output",
        "assembly-X/stack.template.json",
    )
    with pytest.raises(DeclarationError):
        artifact_path("no-separator.json")
    assert capabilities("CAPABILITY_NAMED_IAM,CAPABILITY_AUTO_EXPAND") == [
        "CAPABILITY_NAMED_IAM",
        "CAPABILITY_AUTO_EXPAND",
    ]


def build(
    tmp_path: Path, phases: dict[str, object], timeout_s: float = 30
) -> tuple[str, dict[str, str], str]:
    request = BuildRequest(
        buildspec={"version": 0.2, "phases": phases},
        source_dir=tmp_path,
        environment={"PATH": os.environ["PATH"]},
        timeout_s=timeout_s,
        log=tmp_path / "build.log",
    )
    result = run_build(request)
    return result.status, result.phases, result.log.read_text()


def test_a_failed_build_command_still_runs_finally_and_post_build(tmp_path: Path) -> None:
    status, phases, log = build(
        tmp_path,
        {
            "install": {"commands": ["export CARRIED=yes", "cd /"]},
            "build": {
                "commands": ["echo carried=$CARRIED in $PWD", "false", "echo never"],
                "finally": ["echo cleanup"],
            },
            "post_build": {"commands": ["echo succeeding=$CODEBUILD_BUILD_SUCCEEDING"]},
        },
    )
    assert status == "FAILED"
    assert phases == {"install": "SUCCEEDED", "build": "FAILED", "post_build": "SUCCEEDED"}
    # One shell for every command (buildspec 0.2): the variable and the directory carried over.
    assert "carried=yes in /" in log
    assert "never" not in log.replace("Running command echo never", "")
    assert "cleanup" in log
    assert "succeeding=0" in log


def test_a_failed_install_ends_the_build(tmp_path: Path) -> None:
    status, phases, log = build(
        tmp_path, {"install": {"commands": ["exit 3"]}, "build": {"commands": ["echo built"]}}
    )
    assert (status, phases) == ("FAILED", {})
    assert "built" not in log.replace("Running command echo built", "")


def test_a_build_is_stopped_at_its_timeout(tmp_path: Path) -> None:
    status, _phases, log = build(tmp_path, {"build": {"commands": ["sleep 30"]}}, timeout_s=1)
    assert status == "TIMED_OUT"
    assert "exceeded the project's timeout" in log


def test_buildspec_features_this_codebuild_lacks_are_refused() -> None:
    with pytest.raises(DeclarationError, match="exported-variables"):
        refuse_unsupported({"version": "0.2", "env": {"exported-variables": ["X"]}, "phases": {}})
    with pytest.raises(DeclarationError, match="version"):
        refuse_unsupported({"version": "0.1", "phases": {}})


def test_artifacts_are_collected_by_their_globs(tmp_path: Path) -> None:
    (tmp_path / "cdk.out" / "nested").mkdir(parents=True)
    (tmp_path / "cdk.out" / "manifest.json").write_text("{}")
    (tmp_path / "cdk.out" / "nested" / "t.json").write_text("{}")
    out = tmp_path / "artifact"
    assert (
        collect_artifacts({"artifacts": {"base-directory": "cdk.out", "files": ["**/*"]}}, tmp_path, out) == 2
    )
    assert (out / "nested" / "t.json").exists()
    with pytest.raises(DeclarationError):
        collect_artifacts({"artifacts": {"files": ["missing/**/*"]}}, tmp_path, tmp_path / "other")


def test_the_engine_refuses_a_pipeline_whose_artifacts_do_not_flow() -> None:
    assert structure_errors(DECLARATION) == []
    broken = json.loads(json.dumps(DECLARATION))
    broken["Stages"][1]["Actions"][0]["InputArtifacts"] = [{"Name": "Nowhere"}]
    broken["Stages"][1]["Actions"].append(action("Smoke", "Build", "CodeBuild", 9))
    errors = structure_errors(broken)
    assert any("'Nowhere' is not the output of an earlier action" in e for e in errors)
    assert any("two actions of one name" in e for e in errors)
    assert structure_errors({"Stages": [DECLARATION["Stages"][0]]}) == [
        "a pipeline must have at least two stages"
    ]


def record(home: PipelineHome, execution_id: str, started_at: float) -> ExecutionRecord:
    rec = ExecutionRecord(
        id=execution_id, pipeline="demo", pipeline_version=1, trigger={}, revision={}, started_at=started_at
    )
    home.save(rec)
    return rec


def test_stage_locks_let_one_execution_in_and_supersede_an_older_waiting_one(tmp_path: Path) -> None:
    home = PipelineHome(tmp_path).ensure()
    first, older, newer = record(home, "a", 1.0), record(home, "b", 2.0), record(home, "c", 3.0)
    held = home.try_enter("Dev", first)
    assert held not in (None, False)
    # b waits for the locked stage; then c arrives and waits too: b is superseded, c keeps waiting.
    assert home.try_enter("Dev", older) is None
    assert home.try_enter("Dev", newer) is None
    assert home.try_enter("Dev", older) is False
    home.leave(held)  # type: ignore[arg-type]
    entered = home.try_enter("Dev", newer)
    assert entered not in (None, False)
    assert home.waiting_for("Dev") is None
    home.leave(entered)  # type: ignore[arg-type]
