"""The delivery pipeline as the entry point (cdk_app.py) synthesizes it: source, self-mutation, stage
order, post-deploy steps (commands, outputs, role), artifact key, and cdk-nag over the pipeline and the
stages inside it."""

from __future__ import annotations

import json
import shlex
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_iam as iam
from cfnlint.api import ManualArgs, lint

import cdk_app
from app import public_parameters
from app.config import load_stage_config
from app.constructs.gameday_role import gameday_role_name
from functions.common import names
from lab.cli import build_parser as lab_parser
from loadtest.run import build_parser as loadtest_parser
from pipeline.config import load_pipeline_config
from pipeline.stack import (
    PIPELINE_STACK_ID,
    IngestionPipelineStack,
    build_pipeline,
    pipeline_context,
    synth_role_policy,
)
from pipeline.steps import GAMEDAY_OUTPUTS, LOAD_OUTPUTS, SMOKE_OUTPUTS
from tests import REPO_ROOT as REPO
from tests.infra.app.test_nag_and_lint import CFN_LINT_IGNORED

CDK_JSON = json.loads((REPO / "cdk.json").read_text())
# The effective pipeline settings: cdk.json placeholders on top of the model's defaults.
PIPELINE = load_pipeline_config(CDK_JSON["context"])
# CodePipeline rejects an action whose configuration value is longer than this.
ACTION_CONFIGURATION_LIMIT = 1000
# Step scripts run through bash: the artifact zip that carries the checkout may drop the x bit.
IN_STAGE = ["bash", "pipeline/scripts/in_stage.sh"]
# What the pipeline's context parameter holds for prod (cdk.json's issuer is an example prod refuses).
PROD_IDENTITY = {
    "prodJwtIssuer": "https://login.example.org/oauth2/ingestion",
    "prodJwtAudience": "ingestion-api",
}


@dataclass
class PipelineSynthesis:
    stack: IngestionPipelineStack
    template: dict[str, Any]
    outdir: Path
    validation_error: str | None

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return dict(self.template["Resources"])

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {lid: r for lid, r in self.resources.items() if r["Type"] == resource_type}

    @property
    def pipeline(self) -> dict[str, Any]:
        (resource,) = self.of_type("AWS::CodePipeline::Pipeline").values()
        return dict(resource["Properties"])

    def stage(self, name: str) -> list[dict[str, Any]]:
        (stage,) = [s for s in self.pipeline["Stages"] if s["Name"] == name]
        return list(stage["Actions"])

    def action(self, stage: str, name: str) -> dict[str, Any]:
        (action,) = [a for a in self.stage(stage) if a["Name"] == name]
        return action

    def project(self, action: dict[str, Any]) -> dict[str, Any]:
        return dict(self.resources[action["Configuration"]["ProjectName"]["Ref"]]["Properties"])

    def buildspec(self, action: dict[str, Any]) -> dict[str, Any]:
        return dict(json.loads(self.project(action)["Source"]["BuildSpec"]))

    def project_env(self, action: dict[str, Any]) -> dict[str, Any]:
        return {
            v["Name"]: v["Value"] for v in self.project(action)["Environment"].get("EnvironmentVariables", [])
        }

    def role_statements(self, action: dict[str, Any]) -> list[dict[str, Any]]:
        role_id = self.project(action)["ServiceRole"]["Fn::GetAtt"][0]
        return [
            statement
            for policy in self.of_type("AWS::IAM::Policy").values()
            if {"Ref": role_id} in policy["Properties"]["Roles"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        ]

    def nested_template(self, stage: str, kind: str) -> dict[str, Any]:
        (path,) = (self.outdir / f"assembly-{PIPELINE_STACK_ID}-{stage}").glob(
            f"*{stage}{kind}*.template.json"
        )
        return dict(json.loads(path.read_text()))


@pytest.fixture(scope="module")
def synthesized() -> Iterator[PipelineSynthesis]:
    """The app exactly as the entry point (cdk_app.py) builds it, synthesized once for this module."""
    with tempfile.TemporaryDirectory(prefix="pipeline-tests-") as outdir:
        app = cdk_app.build(App(outdir=outdir, context=PROD_IDENTITY))
        stack = app.node.find_child(PIPELINE_STACK_ID)
        assert isinstance(stack, IngestionPipelineStack)
        error: str | None = None
        try:
            app.synth()
        except RuntimeError as exc:  # cdk-nag findings fail synthesis; the report is still written
            error = str(exc)
        template = json.loads((Path(outdir) / stack.template_file).read_text())
        yield PipelineSynthesis(stack=stack, template=template, outdir=Path(outdir), validation_error=error)


def joined(value: Any) -> str:
    """A CloudFormation string value with the partition resolved to "aws"."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        delimiter, parts = value["Fn::Join"]
        return str(delimiter.join(joined(part) for part in parts))
    if value == {"Ref": "AWS::Partition"}:
        return "aws"
    raise AssertionError(f"unexpected intrinsic {value}")


def stage_config(env_name: str) -> Any:
    config = load_pipeline_config(CDK_JSON["context"])
    return load_stage_config(CDK_JSON["context"], env_name, **config.stage_overrides[env_name])


def checks_role_arn(env_name: str) -> str:
    config = stage_config(env_name)
    return f"arn:aws:iam::{config.account}:role/{gameday_role_name(config.prefix)}"


# --- Source, synth and self-mutation ----------------------------------------------------------


def test_the_pipeline_is_a_v2_pipeline_in_the_pipeline_account(synthesized: PipelineSynthesis) -> None:
    assert synthesized.pipeline["PipelineType"] == "V2"
    assert synthesized.pipeline["Name"] == PIPELINE.pipeline_name
    assert synthesized.stack.account == PIPELINE.account
    assert synthesized.stack.region == PIPELINE.region


def test_source_is_the_connection_and_branch_from_context_and_a_push_triggers_it(
    synthesized: PipelineSynthesis,
) -> None:
    assert synthesized.pipeline["Stages"][0]["Name"] == "Source"
    (source,) = synthesized.stage("Source")
    assert source["ActionTypeId"] == {
        "Category": "Source",
        "Owner": "AWS",
        "Provider": "CodeStarSourceConnection",
        "Version": "1",
    }
    assert source["Configuration"]["ConnectionArn"] == PIPELINE.connection_arn
    assert source["Configuration"]["FullRepositoryId"] == PIPELINE.repository
    assert source["Configuration"]["BranchName"] == PIPELINE.branch
    assert source["Configuration"]["DetectChanges"] is True


def source_action_statements(stack: IngestionPipelineStack) -> list[dict[str, Any]]:
    """The statements of the Source stage's action role(s), resolved."""
    source = stack.pipeline.pipeline.node.find_child("Source")
    policies = [node for node in source.node.find_all() if isinstance(node, iam.Policy)]
    assert policies, "no action role policy in the Source stage"
    return [s for policy in policies for s in stack.resolve(policy.document.to_json())["Statement"]]


@pytest.mark.parametrize(
    "connection_arn",
    [
        "arn:aws:codeconnections:us-east-1:333333333333:connection/11111111-2222-3333-4444-555555555555",
        "arn:aws:codestar-connections:us-east-1:333333333333:connection/11111111-2222-3333-4444-555555555555",
    ],
)
def test_the_source_action_may_use_the_connection_under_its_own_service_prefix(connection_arn: str) -> None:
    """A connection created under the current service name (arn:aws:codeconnections:...) is used with
    codeconnections:UseConnection, an older one with codestar-connections:UseConnection: "the service
    prefix needs to match that of the resource" (Developer Tools console User Guide, "Connections
    rename - Summary of changes")."""
    prefix = connection_arn.split(":")[2]
    stack = build_pipeline(App(context={**PROD_IDENTITY, "connectionArn": connection_arn}))
    granted = {
        action
        for statement in source_action_statements(stack)
        if statement["Resource"] == connection_arn
        for action in _list(statement["Action"])
    }
    assert f"{prefix}:UseConnection" in granted
    if prefix == "codestar-connections":
        # Nothing more than the matching action (CDK's own grant).
        assert granted == {"codestar-connections:UseConnection"}


def test_synth_runs_the_developer_check_before_it_synthesizes(synthesized: PipelineSynthesis) -> None:
    synth = synthesized.action("Build", "Synth")
    spec = synthesized.buildspec(synth)
    commands = spec["phases"]["build"]["commands"]
    assert spec["phases"]["install"]["commands"] == ["npm ci"]  # the CLI pinned in package-lock.json
    check = commands[0].split()
    assert check[0] == "make"
    makefile = (REPO / "Makefile").read_text()
    for target in check[1:]:
        assert f"\n{target}:" in makefile, f"make target {target} does not exist"
    assert {"lint", "typecheck", "test-unit", "test-infra"} <= set(check[1:])
    assert commands[-1].endswith("npx cdk synth")
    assert spec["artifacts"]["base-directory"] == "cdk.out"
    # The real account ids come from the SSM parameter, written where the CDK CLI reads context.
    (fetch,) = [c for c in commands if "get-parameter" in c]
    assert commands.index(fetch) < len(commands) - 1
    assert fetch.endswith("> cdk.context.json")
    # The pre-flight reads that context, and runs before anything is synthesized for deployment.
    (preflight,) = [c for c in commands if "pipeline.preflight" in c]
    assert commands.index(fetch) < commands.index(preflight) < len(commands) - 1
    assert shlex.split(preflight) == [".venv/bin/python", "-m", "pipeline.preflight"]
    assert synthesized.project_env(synth)["CDK_CONTEXT_PARAMETER"] == PIPELINE.context_parameter_name
    ssm = [s for s in synthesized.role_statements(synth) if s["Action"] == "ssm:GetParameter"]
    context_read, preflight_reads = ssm
    assert joined(context_read["Resource"]) == (
        f"arn:aws:ssm:{PIPELINE.region}:{PIPELINE.account}:parameter{PIPELINE.context_parameter_name}"
    )
    # The public parameters each stage resolves, in its own region, and nothing else.
    expected = {
        f"arn:aws:ssm:{config.region}::parameter{parameter.name}"
        for config in (stage_config("dev"), stage_config("prod"))
        for parameter in public_parameters(config)
    }
    assert expected
    assert {joined(r) for r in _list(preflight_reads["Resource"])} == expected


def test_self_mutation_deploys_the_pipeline_stack_with_the_cli_pinned_in_package_json(
    synthesized: PipelineSynthesis,
) -> None:
    names_in_order = [stage["Name"] for stage in synthesized.pipeline["Stages"]]
    assert (
        names_in_order.index("Build") < names_in_order.index("UpdatePipeline") < names_in_order.index("Dev")
    )
    spec = synthesized.buildspec(synthesized.action("UpdatePipeline", "SelfMutate"))
    cli_version = json.loads((REPO / "package.json").read_text())["devDependencies"]["aws-cdk"]
    assert f"npm install -g aws-cdk@{cli_version}" in spec["phases"]["install"]["commands"]
    (deploy,) = spec["phases"]["build"]["commands"]
    assert f"deploy {PIPELINE_STACK_ID} " in deploy


def test_the_artifact_key_rotates(synthesized: PipelineSynthesis) -> None:
    store = synthesized.pipeline["ArtifactStore"]
    key_id = store["EncryptionKey"]["Id"]["Fn::GetAtt"][0]
    key = synthesized.resources[key_id]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    bucket = synthesized.resources[store["Location"]["Ref"]]["Properties"]
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == {"Fn::GetAtt": [key_id, "Arn"]}


# --- Stages and approval ------------------------------------------------------------------------


def deploy_actions(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in actions if a["ActionTypeId"]["Provider"] == "CloudFormation"]


def test_dev_deploys_before_the_approval_and_prod_after_it(synthesized: PipelineSynthesis) -> None:
    names_in_order = [stage["Name"] for stage in synthesized.pipeline["Stages"]]
    assert names_in_order.index("Dev") < names_in_order.index("Prod")
    dev, prod = synthesized.stage("Dev"), synthesized.stage("Prod")
    dev_stacks = {a["Configuration"]["StackName"] for a in deploy_actions(dev)}
    prod_stacks = {a["Configuration"]["StackName"] for a in deploy_actions(prod)}
    kinds = ("state", "functions", "api", "observability")
    assert dev_stacks == {f"ingestion-dev-{kind}" for kind in kinds}
    assert prod_stacks == {f"ingestion-prod-{kind}" for kind in kinds}
    assert not [a for a in dev if a["ActionTypeId"]["Category"] == "Approval"]
    (approval,) = [a for a in prod if a["ActionTypeId"]["Category"] == "Approval"]
    assert approval["ActionTypeId"]["Provider"] == "Manual"
    assert all(approval["RunOrder"] < a["RunOrder"] for a in deploy_actions(prod))
    # Each stage deploys into its own account through that account's bootstrap roles.
    for actions, env_name in ((dev, "dev"), (prod, "prod")):
        account = stage_config(env_name).account
        for action in deploy_actions(actions):
            if "RoleArn" in action["Configuration"]:
                assert f":iam::{account}:role/cdk-" in joined(action["Configuration"]["RoleArn"])


def test_post_steps_run_after_their_stage_deploys_one_at_a_time(synthesized: PipelineSynthesis) -> None:
    dev = synthesized.stage("Dev")
    last_deploy = max(a["RunOrder"] for a in deploy_actions(dev))
    order = {a["Name"]: a["RunOrder"] for a in dev}
    assert last_deploy < order["Smoke"] < order["LoadTest"] < order["PoisonPillGameday"]
    prod = synthesized.stage("Prod")
    prod_steps = [a["Name"] for a in prod if a["ActionTypeId"]["Provider"] == "CodeBuild"]
    assert prod_steps == ["Smoke"]  # gamedayInProd is false in cdk.json
    assert max(a["RunOrder"] for a in deploy_actions(prod)) < synthesized.action("Prod", "Smoke")["RunOrder"]


# --- Post-deploy steps ------------------------------------------------------------------------

STEPS = [
    ("Dev", "Smoke", SMOKE_OUTPUTS),
    ("Dev", "LoadTest", LOAD_OUTPUTS),
    ("Dev", "PoisonPillGameday", GAMEDAY_OUTPUTS),
    ("Prod", "Smoke", SMOKE_OUTPUTS),
]


@pytest.mark.parametrize(("stage", "step", "outputs"), STEPS)
def test_each_step_gets_the_stage_outputs_it_reads(
    synthesized: PipelineSynthesis, stage: str, step: str, outputs: tuple[names.Output, ...]
) -> None:
    action = synthesized.action(stage, step)
    configured = action["Configuration"]["EnvironmentVariables"]
    assert len(configured) <= ACTION_CONFIGURATION_LIMIT
    variables = {v["name"]: v["value"] for v in json.loads(configured)}
    assert set(variables) == {output.value for output in outputs}
    # Each value is the output variable of one of this stage's deploy actions.
    namespaces = {a["Namespace"] for a in deploy_actions(synthesized.stage(stage)) if "Namespace" in a}
    for name, value in variables.items():
        namespace, _, output = value.removeprefix("#{").removesuffix("}").partition(".")
        assert namespace in namespaces
        assert output == name


@pytest.mark.parametrize(("stage", "step", "outputs"), STEPS)
def test_each_step_acts_in_its_stage_as_the_stage_checks_role_and_nothing_else(
    synthesized: PipelineSynthesis, stage: str, step: str, outputs: tuple[names.Output, ...]
) -> None:
    action = synthesized.action(stage, step)
    env_name = stage.lower()
    env = synthesized.project_env(action)
    assert joined(env["STAGE_ROLE_ARN"]) == checks_role_arn(env_name)
    assert env["STAGE_REGION"] == stage_config(env_name).region
    assume = [s for s in synthesized.role_statements(action) if "sts:AssumeRole" in _list(s["Action"])]
    assert [joined(resource) for s in assume for resource in _list(s["Resource"])] == [
        checks_role_arn(env_name)
    ]
    assert all("Condition" not in s for s in assume)


def test_the_stage_deploys_the_checks_role_trusted_by_the_pipeline_account_only(
    synthesized: PipelineSynthesis,
) -> None:
    for stage in ("Dev", "Prod"):
        config = stage_config(stage.lower())
        template = synthesized.nested_template(stage, "Observability")
        roles = [
            r["Properties"]
            for r in template["Resources"].values()
            if r["Type"] == "AWS::IAM::Role"
            and r["Properties"].get("RoleName") == gameday_role_name(config.prefix)
        ]
        assert len(roles) == 1, f"{stage} deploys no role named {gameday_role_name(config.prefix)}"
        (statement,) = roles[0]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Action"] == "sts:AssumeRole"
        assert joined(statement["Principal"]["AWS"]) == f"arn:aws:iam::{PIPELINE.account}:root"


def build_commands(synthesized: PipelineSynthesis, stage: str, step: str) -> list[str]:
    return list(synthesized.buildspec(synthesized.action(stage, step))["phases"]["build"]["commands"])


def test_smoke_runs_the_curl_script_inside_the_stage(synthesized: PipelineSynthesis) -> None:
    for stage in ("Dev", "Prod"):
        (command,) = build_commands(synthesized, stage, "Smoke")
        assert shlex.split(command) == [*IN_STAGE, "bash", "pipeline/scripts/smoke.sh"]
    # The API credential for each stage's authMode.
    dev_env = synthesized.project_env(synthesized.action("Dev", "Smoke"))
    prod_env = synthesized.project_env(synthesized.action("Prod", "Smoke"))
    assert stage_config("dev").auth_mode == "apiKey"
    api = synthesized.nested_template("Dev", "Api")
    (secret,) = [r for r in api["Resources"].values() if r["Type"] == "AWS::SecretsManager::Secret"]
    assert dev_env["API_KEY_SECRET_ID"] == secret["Properties"]["Name"]
    assert stage_config("prod").auth_mode == "jwt"
    assert prod_env["JWT_SECRET_ID"] == PIPELINE.jwt_token_secret_name
    (read_token,) = [
        s
        for s in synthesized.role_statements(synthesized.action("Prod", "Smoke"))
        if s["Action"] == "secretsmanager:GetSecretValue"
    ]
    assert joined(read_token["Resource"]) == (
        f"arn:aws:secretsmanager:{PIPELINE.region}:{PIPELINE.account}:secret:"
        f"{PIPELINE.jwt_token_secret_name}-??????"
    )


def test_load_step_runs_locust_and_the_gate_with_the_context_settings(synthesized: PipelineSynthesis) -> None:
    (command,) = build_commands(synthesized, "Dev", "LoadTest")
    argv = shlex.split(command)
    assert argv[:5] == [*IN_STAGE, "python", "-m", "loadtest"]
    # The runner's own parser accepts the step's arguments (a renamed flag fails here, not in AWS).
    args = loadtest_parser().parse_args(argv[5:])
    load = PIPELINE.load
    assert args.target == "env"
    assert args.users == load.users
    assert args.spawn_rate == load.spawn_rate
    assert args.run_time == load.run_time
    assert args.rps_per_user == load.rps_per_user
    assert args.duplicate_pool_size == load.duplicate_pool_size
    assert args.max_failure_ratio == load.max_failure_ratio
    assert args.max_p95_ms == load.max_p95_ms
    assert args.min_requests == load.min_requests
    assert args.verify_timeout == load.verify_timeout_seconds
    assert args.count_events is True  # the duplicate-submit check counts success events too
    assert args.skip_verify is False


def test_gameday_step_runs_the_poison_pill_gameday_and_always_resets_the_failure_mode(
    synthesized: PipelineSynthesis,
) -> None:
    spec = synthesized.buildspec(synthesized.action("Dev", "PoisonPillGameday"))
    (command,) = spec["phases"]["build"]["commands"]
    argv = shlex.split(command)
    assert argv[:5] == [*IN_STAGE, "python", "-m", "lab.cli"]
    args = lab_parser().parse_args(argv[5:])
    assert (args.command, args.name, args.target) == ("gameday", "poison-pill", "env")
    (reset,) = spec["phases"]["build"]["finally"]
    argv = shlex.split(reset)
    assert argv[:5] == [*IN_STAGE, "aws", "ssm", "put-parameter"]
    assert argv[argv.index("--name") + 1] == names.FAILURE_MODE_PARAMETER
    assert argv[argv.index("--value") + 1] == names.FailureMode.NONE.value


# --- cdk-nag ----------------------------------------------------------------------------------


def test_cdk_nag_finds_nothing_unacknowledged_in_the_pipeline_or_its_stages(
    synthesized: PipelineSynthesis,
) -> None:
    report = json.loads((synthesized.outdir / "validation-report.json").read_text())
    findings = [
        f"{violation['ruleName']} at {construct['constructPath']}"
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
        if construct["constructPath"].startswith(f"{PIPELINE_STACK_ID}/")
    ]
    assert findings == []


def test_every_acknowledgement_in_the_pipeline_stack_has_a_reason_and_stays_out_of_the_stages(
    synthesized: PipelineSynthesis,
) -> None:
    acknowledged = [
        (construct.node.path, rule, reason)
        for construct in synthesized.stack.node.find_all()
        for entry in construct.node.metadata
        if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY
        for rule, reason in entry.data.items()
    ]
    acknowledged_at = {path for path, _, _ in acknowledged}
    reasons = {rule: reason for _, rule, reason in acknowledged}
    assert reasons, "the pipeline stack acknowledges nothing: were the findings fixed?"
    assert {rule: reason for rule, reason in reasons.items() if len(reason.split()) < 6} == {}
    # The pipeline's acknowledgements sit on CDK Pipelines' constructs, never on an ancestor of
    # the stages: a finding inside dev or prod must be acknowledged by the stage itself (app/).
    stages = (f"{PIPELINE_STACK_ID}/Dev/", f"{PIPELINE_STACK_ID}/Prod/")
    pipeline_owned = [path for path in acknowledged_at if not path.startswith(stages)]
    assert pipeline_owned
    assert all(path.startswith(f"{PIPELINE_STACK_ID}/Pipeline") for path in pipeline_owned), pipeline_owned


def test_the_app_synthesizes_the_pipeline_next_to_the_standalone_stages(
    synthesized: PipelineSynthesis,
) -> None:
    manifest = json.loads((synthesized.outdir / "manifest.json").read_text())
    nested = {name for name, a in manifest["artifacts"].items() if a["type"] == "cdk:cloud-assembly"}
    assert {f"assembly-{PIPELINE_STACK_ID}-Dev", f"assembly-{PIPELINE_STACK_ID}-Prod"} <= nested
    assert PIPELINE_STACK_ID in manifest["artifacts"]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- Context ------------------------------------------------------------------------------------


def test_context_on_the_command_line_overrides_cdk_json() -> None:
    app = App(
        context={"pipelineAccount": "444444444444", "devAccount": "555555555555", "gamedayInProd": "false"}
    )
    context = pipeline_context(app)
    config = load_pipeline_config(context)
    assert config.account == "444444444444"
    assert config.stage_overrides["dev"] == {"account": "555555555555", "pipelineAccount": "444444444444"}
    assert config.stage_overrides["prod"] == {"pipelineAccount": "444444444444"}


# --- Bootstrap execution policy -----------------------------------------------------------------

# CloudFormation resource namespace -> IAM service prefix, for every service the stages deploy.
SERVICE_PREFIXES = {
    "ApiGatewayV2": "apigateway",
    "CloudWatch": "cloudwatch",
    "DynamoDB": "dynamodb",
    "Events": "events",
    "FIS": "fis",
    "IAM": "iam",
    "KMS": "kms",
    "Lambda": "lambda",
    "Logs": "logs",
    "S3": "s3",
    "SNS": "sns",
    "SQS": "sqs",
    "SSM": "ssm",
    "SecretsManager": "secretsmanager",
}


def test_the_bootstrap_execution_policy_covers_what_the_stages_deploy(synthesized: PipelineSynthesis) -> None:
    policy = json.loads((REPO / "pipeline" / "bootstrap" / "cfn-execution-policy.json").read_text())
    allowed = {action.split(":")[0] for s in policy["Statement"] for action in _list(s["Action"])}
    (roles_statement,) = [s for s in policy["Statement"] if any(a.startswith("iam:") for a in s["Action"])]
    role_prefix = roles_statement["Resource"].rsplit("/", 1)[1].rstrip("*")
    for stage in ("Dev", "Prod"):
        assembly = synthesized.outdir / f"assembly-{PIPELINE_STACK_ID}-{stage}"
        manifest = json.loads((assembly / "manifest.json").read_text())
        for artifact in manifest["artifacts"].values():
            if artifact["type"] != "aws:cloudformation:stack":
                continue
            template_file = artifact["properties"]["templateFile"]
            template = json.loads((assembly / template_file).read_text())
            for resource in template["Resources"].values():
                namespace, service, _ = resource["Type"].split("::")
                if namespace == "AWS" and service != "CDK":
                    assert service in SERVICE_PREFIXES, f"{resource['Type']}: add its service to the policy"
                    assert SERVICE_PREFIXES[service] in allowed, f"{template_file}: {resource['Type']}"
                if resource["Type"] == "AWS::IAM::Role":
                    # Unnamed roles get "<stack name>-<logical id>-<suffix>" from CloudFormation.
                    name = resource["Properties"].get("RoleName", artifact["properties"]["stackName"])
                    assert name.startswith(role_prefix), (
                        f"{template_file}: role {name} is outside {role_prefix}*"
                    )


# CDK Pipelines writes each deploy action's RoleArn as Fn::Join with an empty delimiter; the
# pipeline-action rule (E3703) reports that style choice of generated code, and only that is dropped.
JOIN_STYLE = "Prefer using Fn::Sub over Fn::Join with an empty delimiter"


def test_cfn_lint_finds_nothing_in_the_pipeline_template(synthesized: PipelineSynthesis) -> None:
    config = ManualArgs(regions=[PIPELINE.region], ignore_checks=list(CFN_LINT_IGNORED))
    problems = [
        f"{match.rule.id} {match.message}"
        for match in lint((synthesized.outdir / synthesized.stack.template_file).read_text(), config=config)
        if match.message != JOIN_STYLE
    ]
    assert problems == []


def test_prod_trusts_the_identity_provider_of_the_context(synthesized: PipelineSynthesis) -> None:
    """The prod smoke test's token comes from the issuer the context names, not cdk.json's example."""
    api = synthesized.nested_template("Prod", "Api")
    (authorizer,) = [r for r in api["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Authorizer"]
    assert authorizer["Properties"]["JwtConfiguration"] == {
        "Issuer": PROD_IDENTITY["prodJwtIssuer"],
        "Audience": [PROD_IDENTITY["prodJwtAudience"]],
    }


def test_the_synth_role_reads_no_public_parameter_when_no_stage_resolves_one() -> None:
    """A statement with no resource is invalid IAM: without public parameters there is none."""
    app = App()
    stack = Stack(app, "Synth", env={"account": PIPELINE.account, "region": PIPELINE.region})
    local = load_stage_config(CDK_JSON["context"], "local")
    assert not local.powertools_layer_from_ssm
    (context_read,) = synth_role_policy(stack, PIPELINE, [local])
    assert stack.resolve(context_read.to_json())["Sid"] == "ReadSynthContext"
    assert len(synth_role_policy(stack, PIPELINE, [stage_config("dev")])) == 2
