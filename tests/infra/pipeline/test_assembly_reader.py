"""The assembly reader (lab.localcloud.codepipeline.assembly) against the synthesized pipeline: the
stages and run orders the rehearsal executes, the buildspecs and timeouts it runs, the stage
templates its deploy actions name, and the outputs its post-deploy steps read."""

from __future__ import annotations

import json
import shlex
import subprocess

from functions.common import names
from lab.localcloud.codepipeline.assembly import SynthesizedPipeline
from lab.localcloud.codepipeline.model import build_commands
from pipeline.config import load_pipeline_config
from pipeline.stack import SYNTH_COMMANDS, cdk_assets_version, cdk_cli_version
from pipeline.steps import GAMEDAY_COMMAND, IN_STAGE_COMMAND, SMOKE, script
from tests import REPO_ROOT

CONTEXT = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
PIPELINE = load_pipeline_config(CONTEXT)
STAGES = ["Source", "Build", "UpdatePipeline", "Assets", "Dev", "Prod"]


def names_by_group(synth: SynthesizedPipeline, stage: str) -> list[list[str]]:
    return [[a.name for a in group] for group in synth.pipeline.stage(stage).run_groups()]


def test_stages_run_in_the_synthesized_order(pipeline_assembly: SynthesizedPipeline) -> None:
    pipeline = pipeline_assembly.pipeline
    assert [s.name for s in pipeline.stages] == STAGES
    assert (pipeline.name, pipeline.pipeline_type, pipeline.execution_mode) == (
        PIPELINE.pipeline_name,
        "V2",
        "SUPERSEDED",
    )
    assert pipeline.restart_on_update
    (source,) = pipeline.source_actions
    assert source.provider == "CodeStarSourceConnection"
    assert source.configuration["BranchName"] == PIPELINE.branch


def test_dev_deploys_its_stacks_in_dependency_order_then_runs_its_checks_one_by_one(
    pipeline_assembly: SynthesizedPipeline,
) -> None:
    """The API and observability stacks depend on the functions stack only (no export between them),
    so the pipeline prepares and deploys them side by side."""
    groups = names_by_group(pipeline_assembly, "Dev")
    assert [sorted(group) for group in groups[:-3]] == [
        [f"ingestion-dev-{kind}.{step}" for kind in kinds]
        for kinds in (("state",), ("functions",), ("api", "observability"))
        for step in ("Prepare", "Deploy")
    ]
    assert groups[-3:] == [["Smoke"], ["LoadTest"], ["PoisonPillGameday"]]


def test_prod_waits_for_the_approval_before_any_deploy(pipeline_assembly: SynthesizedPipeline) -> None:
    groups = names_by_group(pipeline_assembly, "Prod")
    assert groups[0] == ["PromoteToProd"]
    assert pipeline_assembly.pipeline.stage("Prod").action("PromoteToProd").provider == "Manual"
    assert groups[-1] == ["Smoke"]
    # Independent stacks prepare and deploy side by side (one run order).
    assert any(len(group) > 1 for group in groups)


def test_build_actions_carry_the_synthesized_buildspecs_and_timeouts(
    pipeline_assembly: SynthesizedPipeline,
) -> None:
    synth = pipeline_assembly.pipeline.stage("Build").action("Synth")
    assert build_commands(pipeline_assembly.buildspec(synth)) == list(SYNTH_COMMANDS)
    # No timeout synthesized: CodeBuild's default.
    assert pipeline_assembly.project(synth).timeout_minutes == 60
    mutate = pipeline_assembly.pipeline.stage("UpdatePipeline").actions[0]
    install = pipeline_assembly.buildspec(mutate)["phases"]["install"]["commands"]
    assert install == [f"npm install -g aws-cdk@{cdk_cli_version()}"]
    smoke = pipeline_assembly.pipeline.stage("Dev").action("Smoke")
    assert build_commands(pipeline_assembly.buildspec(smoke)) == [f"{IN_STAGE_COMMAND} {script(SMOKE)}"]
    assert pipeline_assembly.project(smoke).timeout_minutes == PIPELINE.step_timeout_minutes
    gameday = pipeline_assembly.pipeline.stage("Dev").action("PoisonPillGameday")
    assert build_commands(pipeline_assembly.buildspec(gameday)) == [f"{IN_STAGE_COMMAND} {GAMEDAY_COMMAND}"]


def test_the_asset_buildspec_is_read_from_the_assembly_and_publishes_to_both_accounts(
    pipeline_assembly: SynthesizedPipeline,
) -> None:
    assets = pipeline_assembly.pipeline.stage("Assets").actions[0]
    # CDK Pipelines writes this buildspec as a file of the assembly, named by the project.
    assert not pipeline_assembly.project(assets).inline_buildspec
    buildspec = pipeline_assembly.buildspec(assets)
    # The cdk-assets CLI pinned in package.json, not CDK Pipelines' default of @latest.
    assert buildspec["phases"]["install"]["commands"] == [f"npm install -g cdk-assets@{cdk_assets_version()}"]
    commands = build_commands(buildspec)
    targets = {CONTEXT["ingestion"]["environments"][env]["account"] for env in ("dev", "prod")}
    assert all(command.startswith("cdk-assets --path ") for command in commands)
    assert {account for account in targets if any(f":{account}-" in c for c in commands)} == targets


def test_deploy_actions_name_the_stage_templates_and_steps_read_their_outputs(
    pipeline_assembly: SynthesizedPipeline,
) -> None:
    stacks = [s.stack_name for s in pipeline_assembly.stage_stacks("Dev")]
    assert stacks == [f"ingestion-dev-{kind}" for kind in ("state", "functions", "api", "observability")]
    smoke = pipeline_assembly.pipeline.stage("Dev").action("Smoke")
    (api_url,) = [v for v in smoke.environment_variables() if v.name == names.Output.API_URL.value]
    namespace = api_url.value.removeprefix("#{").split(".", 1)[0]
    outputs = pipeline_assembly.variables_of(namespace)
    assert api_url.value == f"#{{{namespace}.{names.Output.API_URL.value}}}"
    assert names.Output.API_URL.value in outputs
    prepare = pipeline_assembly.pipeline.stage("Dev").action("ingestion-dev-state.Prepare")
    assert prepare.configuration["ActionMode"] == "CHANGE_SET_REPLACE"
    role = str(prepare.configuration["RoleArn"])
    assert role.endswith(
        f":role/cdk-hnb659fds-cfn-exec-role-{CONTEXT['ingestion']['environments']['dev']['account']}-us-east-1"
    )


def test_the_pinned_cdk_assets_reads_the_asset_manifests_the_asset_actions_publish(
    pipeline_assembly: SynthesizedPipeline,
) -> None:
    """The asset actions run cdk-assets on the synthesized manifests: it must read their schema
    version (a CDK library newer than cdk-assets fails every run at Assets)."""
    cli = REPO_ROOT / "node_modules" / ".bin" / "cdk-assets"
    assert cli.exists(), "the pinned cdk-assets is missing: run `npm ci`"
    assets = pipeline_assembly.pipeline.stage("Assets").actions[0]
    for command in build_commands(pipeline_assembly.buildspec(assets)):
        manifest = shlex.split(command)[shlex.split(command).index("--path") + 1]
        listed = subprocess.run(
            [str(cli), "--path", manifest, "ls"],
            cwd=pipeline_assembly.assembly_dir,
            capture_output=True,
            text=True,
            check=False,
        )
        assert listed.returncode == 0, listed.stderr[-2000:]
