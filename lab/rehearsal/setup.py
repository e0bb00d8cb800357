"""`lab pipeline init`: what docs/delivery.md's "Bootstrap the three accounts", "Configure it", "Create
the connection" and "First deploy" ask of an operator, done on the local cloud:

- dev and prod bootstrapped with `cdk bootstrap --trust <pipeline account>` and the scoped execution
  policy of pipeline/bootstrap/, the pipeline account bootstrapped;
- a metrics/alarm agent per target account (the drills wait for alarms);
- the context parameter the synth step reads, and the prod smoke test's bearer token;
- the `lab` git remote, whose hook runs the pipeline on a push;
- the pipeline stack deployed once (`cdk deploy IngestionPipeline`), from then on updated by itself.

Each step is skipped when already done on this engine; a restarted engine has lost everything.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from lab.harness import lifecycle
from lab.harness.cdk import QUIET_CDK, ensure_cdk
from lab.localcloud import agent_process
from lab.localcloud.engine import EngineClients, EngineInfo, aws_env
from lab.rehearsal import issuer as issuers
from lab.rehearsal.git import export_tree, git
from lab.rehearsal.paths import RehearsalDir
from lab.rehearsal.profile import (
    PIPELINE_STACK_ID,
    REMOTE_NAME,
    Accounts,
    Issuer,
    accounts,
    cdk_context,
    context_document,
    watched_branch,
)
from stage_client.target import REPO_ROOT

Log = Callable[[str], None]
EXECUTION_POLICY_FILE = REPO_ROOT / "pipeline" / "bootstrap" / "cfn-execution-policy.json"
EXECUTION_POLICY_NAME = "ingestion-lab-cfn-exec"
BOOTSTRAP_STACK = "CDKToolkit"
BOOTSTRAP_VERSION_PARAMETER = "/cdk-bootstrap/hnb659fds/version"
HOOK = """#!/bin/sh
# The lab pipeline's trigger (lab/rehearsal/hook.py): a push to the watched branch starts a run.
exec env -u GIT_DIR -u GIT_QUARANTINE_PATH -u GIT_OBJECT_DIRECTORY -u GIT_ALTERNATE_OBJECT_DIRECTORIES \\
  {python} -m lab.rehearsal hook --state-dir {state} --reports-dir {reports}
"""


class SetupError(RuntimeError):
    """The local pipeline could not be set up."""


@dataclass(frozen=True)
class Setup:
    """What init set up, as recorded in setup.json."""

    engine_started_at: float
    accounts: Accounts
    branch: str
    pipeline_name: str
    context_parameter: str
    smoke_secret: str
    issuer: Issuer
    password: str

    def to_json(self) -> dict[str, Any]:
        return {
            "engineStartedAt": self.engine_started_at,
            "accounts": self.accounts.__dict__,
            "branch": self.branch,
            "pipelineName": self.pipeline_name,
            "contextParameter": self.context_parameter,
            "smokeSecret": self.smoke_secret,
            "issuer": self.issuer.__dict__,
            "password": self.password,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Setup:
        return cls(
            engine_started_at=float(data["engineStartedAt"]),
            accounts=Accounts(**data["accounts"]),
            branch=str(data["branch"]),
            pipeline_name=str(data["pipelineName"]),
            context_parameter=str(data["contextParameter"]),
            smoke_secret=str(data["smokeSecret"]),
            issuer=Issuer(**data["issuer"]),
            password=str(data["password"]),
        )


def read_setup(rdir: RehearsalDir, info: EngineInfo | None) -> Setup | None:
    """The recorded setup, if it was made on this very engine."""
    if info is None or not rdir.setup_json.exists():
        return None
    setup = Setup.from_json(json.loads(rdir.setup_json.read_text(encoding="utf-8")))
    return setup if setup.engine_started_at == info.started_at else None


def cdk(args: list[str], info: EngineInfo, account: str, log_file: Path, cwd: Path) -> None:
    """The pinned CDK CLI as the root of `account` on the engine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env.update(aws_env(info.endpoint_url, account=account))
    env.update(QUIET_CDK)
    command = [str(ensure_cdk()), *args]
    with log_file.open("ab") as log:
        log.write(f"\n$ {shlex.join(command)}  # as {account}\n".encode())
        log.flush()
        result = subprocess.run(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)  # noqa: S603
    if result.returncode != 0:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-20:])
        raise SetupError(f"`cdk {args[0]}` as {account} failed; last lines of {log_file}:\n{tail}")


def is_bootstrapped(info: EngineInfo, account: str) -> bool:
    clients = EngineClients(info, account)
    try:
        stack = clients("cloudformation").describe_stacks(StackName=BOOTSTRAP_STACK)["Stacks"][0]
        clients("ssm").get_parameter(Name=BOOTSTRAP_VERSION_PARAMETER)
    except ClientError:
        return False
    return str(stack["StackStatus"]).endswith("_COMPLETE")


def bootstrap_command(account: str, region: str, trust: str | None) -> list[str]:
    """The `cdk bootstrap` arguments of one account (docs/delivery.md, "Bootstrap the three accounts")."""
    args = ["bootstrap", f"aws://{account}/{region}"]
    if trust:
        policy = f"arn:aws:iam::{account}:policy/{EXECUTION_POLICY_NAME}"
        args += ["--trust", trust, "--cloudformation-execution-policies", policy]
    return args


def bootstrap_accounts(rdir: RehearsalDir, info: EngineInfo, accounts_: Accounts, log: Log) -> None:
    for env_name, account in accounts_.targets.items():
        if is_bootstrapped(info, account):
            continue
        iam = EngineClients(info, account)("iam")
        # An earlier init on this engine may have created it.
        with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
            iam.create_policy(
                PolicyName=EXECUTION_POLICY_NAME, PolicyDocument=EXECUTION_POLICY_FILE.read_text()
            )
        log(f"bootstrapping {env_name} ({account}): trusts {accounts_.pipeline}, {EXECUTION_POLICY_NAME}")
        cdk(
            bootstrap_command(account, accounts_.region, accounts_.pipeline),
            info,
            account,
            rdir.root / "cdk.log",
            rdir.root,
        )
    if not is_bootstrapped(info, accounts_.pipeline):
        log(f"bootstrapping the pipeline account ({accounts_.pipeline})")
        cdk(
            bootstrap_command(accounts_.pipeline, accounts_.region, None),
            info,
            accounts_.pipeline,
            rdir.root / "cdk.log",
            rdir.root,
        )


def start_agents(rdir: RehearsalDir, info: EngineInfo, accounts_: Accounts) -> None:
    """One metrics/alarm agent per target account (restarted: it reads the alarms then deployed)."""
    for env_name, account in accounts_.targets.items():
        cloud = rdir.agent_dir(env_name).ensure()
        if not agent_process.agent_running(cloud):
            agent_process.start_agent(cloud, info, account=account, engine_json=rdir.state.engine_json)


def stop_agents(rdir: RehearsalDir) -> None:
    for env_name in ("dev", "prod"):
        agent_process.stop_agent(rdir.agent_dir(env_name))


def ensure_remote(rdir: RehearsalDir, repo_root: Path) -> None:
    """The bare repository behind the `lab` remote, its hook, and the remote in `repo_root`."""
    if not (rdir.repository / "HEAD").exists():
        git("init", "--quiet", "--bare", str(rdir.repository))
    hook = rdir.repository / "hooks" / "post-receive"
    hook.write_text(
        HOOK.format(
            python=shlex.quote(sys.executable),
            state=shlex.quote(str(rdir.state.root.resolve())),
            reports=shlex.quote(str(rdir.reports.resolve())),
        )
    )
    hook.chmod(0o755)
    verb = "set-url" if REMOTE_NAME in git("remote", cwd=repo_root).split() else "add"
    git("remote", verb, REMOTE_NAME, str(rdir.repository.resolve()), cwd=repo_root)


def put_context(info: EngineInfo, setup: Setup, context: dict[str, Any]) -> dict[str, Any]:
    document = context_document(context, setup.issuer, setup.branch)
    EngineClients(info, setup.accounts.pipeline)("ssm").put_parameter(
        Name=setup.context_parameter, Value=json.dumps(document), Type="String", Overwrite=True
    )
    return document


def refresh_smoke_token(info: EngineInfo, setup: Setup) -> None:
    """A fresh bearer token for prod's smoke test (the pool's tokens live an hour)."""
    token = issuers.issue_token(info, setup.issuer, setup.password)
    issuers.store_token(info, setup.accounts.pipeline, setup.smoke_secret, token)


def pipeline_settings(context: dict[str, Any]) -> Any:
    """The pipeline's validated settings (names of the parameter, the secret, the pipeline)."""
    from pipeline.config import load_pipeline_config  # noqa: PLC0415 - loads the CDK: only when needed

    return load_pipeline_config(context)


def deployed_pipelines(rdir: RehearsalDir, accounts_: Accounts) -> list[str]:
    folder = rdir.state.codepipeline_dir / accounts_.pipeline / accounts_.region
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


@dataclass(frozen=True)
class FirstDeploy:
    """`cdk deploy IngestionPipeline` of one commit, synthesized with the context the synth step will
    read (docs/delivery.md, "First deploy"): the only deployment by hand."""

    rdir: RehearsalDir
    info: EngineInfo
    setup: Setup
    repo_root: Path

    def run(self, document: dict[str, Any], commit: str, log: Log) -> None:
        workdir = self.rdir.first_deploy
        shutil.rmtree(workdir, ignore_errors=True)
        export_tree(commit, workdir, cwd=self.repo_root)
        (workdir / "cdk.context.json").write_text(json.dumps(document, indent=2))
        log(f"first deploy of {PIPELINE_STACK_ID} from {commit[:10]}: cdk synth, then cdk deploy")
        app = f"{shlex.quote(sys.executable)} cdk_app.py"
        self._cdk(["synth", "--app", app, "--quiet", PIPELINE_STACK_ID], workdir)
        self._cdk(["deploy", "--app", "cdk.out", PIPELINE_STACK_ID, "--require-approval", "never"], workdir)

    def _cdk(self, args: list[str], cwd: Path) -> None:
        cdk(args, self.info, self.setup.accounts.pipeline, self.rdir.root / "cdk.log", cwd)


def init(rdir: RehearsalDir, *, repo_root: Path = REPO_ROOT, log: Log = print) -> Setup:
    """Everything above, each step skipped when already done on this engine."""
    rdir.root.mkdir(parents=True, exist_ok=True)
    rdir.home.ensure()
    info = lifecycle.start(rdir.state)
    context = cdk_context(repo_root / "cdk.json")
    setup = read_setup(rdir, info)
    if setup is None:
        accounts_ = accounts(context)
        settings = pipeline_settings(context)
        log(
            f"setting up the local pipeline on {info.endpoint_url}: pipeline account {accounts_.pipeline}, "
            f"dev {accounts_.dev}, prod {accounts_.prod}"
        )
        issuer, password = issuers.create_issuer(info, accounts_.region)
        setup = Setup(
            engine_started_at=info.started_at,
            accounts=accounts_,
            branch=watched_branch(context),
            pipeline_name=settings.pipeline_name,
            context_parameter=settings.context_parameter_name,
            smoke_secret=settings.jwt_token_secret_name,
            issuer=issuer,
            password=password,
        )
        rdir.setup_json.write_text(json.dumps(setup.to_json(), indent=2) + "\n")
    # Checked every time: an account whose bootstrap was deleted is bootstrapped again.
    bootstrap_accounts(rdir, info, setup.accounts, log)
    start_agents(rdir, info, setup.accounts)
    document = put_context(info, setup, context)
    refresh_smoke_token(info, setup)
    ensure_remote(rdir, repo_root)
    if setup.pipeline_name not in deployed_pipelines(rdir, setup.accounts):
        FirstDeploy(rdir, info, setup, repo_root).run(document, git("rev-parse", "HEAD", cwd=repo_root), log)
    return setup
