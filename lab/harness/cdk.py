"""The pinned CDK CLI against the local cloud: bootstrap, synthesize the app into the state dir,
deploy the stage's stacks, and read the cloud assembly (stack names, template fingerprint)."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from lab.harness.paths import CDK_BIN, LOCAL_ENV_NAME, STAGE_NAME, StateDir
from lab.localcloud.engine import ACCOUNT_ID, REGION, EngineInfo, aws_env
from stage_client.target import REPO_ROOT

BOOTSTRAP_STACK = "CDKToolkit"
# The cdk.json key of the stage configuration (app.config.CONTEXT_KEY; read here as data, since the
# harness drives the app only through the CDK CLI).
CONTEXT_KEY = "ingestion"
# The folders `python -m app` reads (cdk.json's watch list).
SYNTH_SOURCE_DIRS = ("app", "functions", "ops/queries")


class DeployError(RuntimeError):
    """The stage could not be synthesized, deployed or checked."""


def ensure_cdk(log=print) -> Path:
    """The CDK CLI pinned by package-lock.json (npm ci when node_modules lacks it)."""
    if not CDK_BIN.exists():
        log("installing the pinned AWS CDK CLI (npm ci)")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=REPO_ROOT, check=True)  # noqa: S607 - npm from PATH
    return CDK_BIN


# What a CDK process needs to run quietly here: the CLI's telemetry off, and jsii's Node version
# warnings silenced (Node 20: synth works on it; the end-of-life one takes the major versions).
QUIET_CDK = {
    "CDK_DISABLE_CLI_TELEMETRY": "true",
    "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION": "1",
    "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
}


def _cdk_env(info: EngineInfo) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(aws_env(info.endpoint_url))
    env.update(
        {
            "CDK_DEFAULT_ACCOUNT": ACCOUNT_ID,
            "CDK_DEFAULT_REGION": REGION,
            **QUIET_CDK,
        }
    )
    return env


def run_cdk(
    args: list[str],
    info: EngineInfo,
    log_file: Path,
    cwd: Path = REPO_ROOT,
    extra_env: dict[str, str] | None = None,
) -> None:
    command = [str(ensure_cdk()), *args]
    with log_file.open("ab") as log:
        log.write(f"\n$ {shlex.join(command)}\n".encode())
        log.flush()
        result = subprocess.run(  # noqa: S603 - argv of the pinned CDK CLI built here
            command,
            cwd=cwd,
            env={**_cdk_env(info), **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if result.returncode != 0:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-25:])
        raise DeployError(f"`cdk {args[0]}` failed ({result.returncode}); last lines of {log_file}:\n{tail}")


def is_bootstrapped(cfn: Any) -> bool:
    try:
        stacks = cfn.describe_stacks(StackName=BOOTSTRAP_STACK)["Stacks"]
    except cfn.exceptions.ClientError:
        return False
    return bool(stacks) and stacks[0]["StackStatus"].endswith("_COMPLETE")


def bootstrap(state: StateDir, info: EngineInfo) -> None:
    # Run outside the repo: with no cdk.json in sight the CLI bootstraps the named environment
    # without synthesizing the app first.
    run_cdk(["bootstrap", f"aws://{ACCOUNT_ID}/{REGION}"], info, state.cdk_log, cwd=state.root)


def synthesize(state: StateDir, info: EngineInfo, overrides: dict[str, Any] | None = None) -> Path:
    """Synthesize the app into the state dir's own cloud assembly (never the shared cdk.out).

    overrides: cdk.json keys of the local environment to change for this synthesis (authMode,
    useKmsCmk...), e.g. to deploy the same stage under another configuration. They go into a cdk.json
    of the state dir, which the CLI then reads instead of the repository's (a `-c key=value` carries
    strings only); the repository's files stay untouched."""
    cwd, extra_env = REPO_ROOT, None
    if overrides:
        cwd = state.root / "synth-context"
        cwd.mkdir(exist_ok=True)
        (cwd / "cdk.json").write_text(json.dumps({"context": context_with(overrides)}, indent=2) + "\n")
        extra_env = {"PYTHONPATH": str(REPO_ROOT)}  # `-m app` from outside the checkout
    # The app runs on this interpreter (the project venv), whatever `python` the shell has.
    run_cdk(
        [
            "synth",
            "--app",
            f"{shlex.quote(sys.executable)} -m app",
            "--output",
            str(state.cloud_assembly),
            "--quiet",
        ],
        info,
        state.cdk_log,
        cwd=cwd,
        extra_env=extra_env,
    )
    return stage_assembly(state)


def context_with(overrides: dict[str, Any]) -> dict[str, Any]:
    """The repository's cdk.json context with the local environment's keys replaced by overrides
    (a key set to None is removed: the configuration model's default applies)."""
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    local = context[CONTEXT_KEY]["environments"][LOCAL_ENV_NAME]
    for key, value in overrides.items():
        if value is None:
            local.pop(key, None)
        else:
            local[key] = value
    return dict(context)


def cdk_deploy(state: StateDir, info: EngineInfo) -> None:
    """`cdk deploy` of the stage's stacks from the cloud assembly synthesized before (no re-synth)."""
    args = ["deploy", "--app", str(state.cloud_assembly), f"{STAGE_NAME}/*", "--require-approval", "never"]
    run_cdk([*args, "--progress", "events"], info, state.cdk_log)


def stage_assembly(state: StateDir) -> Path:
    nested = state.cloud_assembly / f"assembly-{STAGE_NAME}"
    if not nested.is_dir():
        raise DeployError(f"the cloud assembly has no stage {STAGE_NAME} ({nested} is missing)")
    return nested


def stage_stack_names(assembly: Path) -> list[str]:
    """The CloudFormation stack names of the stage, in the assembly's order."""
    manifest = json.loads((assembly / "manifest.json").read_text())
    names = []
    for artifact_id, artifact in manifest.get("artifacts", {}).items():
        if artifact.get("type") == "aws:cloudformation:stack":
            names.append(artifact.get("properties", {}).get("stackName") or artifact_id)
    if not names:
        raise DeployError(f"no stack in {assembly}")
    return names


def fingerprint(assembly: Path) -> str:
    """Templates name their assets by content hash, so the templates alone identify a deployment."""
    digest = hashlib.sha256()
    for template in sorted(assembly.glob("*.template.json")):
        digest.update(template.name.encode())
        digest.update(template.read_bytes())
    return digest.hexdigest()


def source_fingerprint(overrides: dict[str, Any] | None = None) -> str:
    """What the synthesized stage depends on: the app, the function code, the queries it embeds,
    cdk.json (and the overrides of its local environment), the pinned CDK library and the packages
    bundled into the code asset."""
    digest = hashlib.sha256()
    digest.update(json.dumps(overrides or {}, sort_keys=True).encode())
    files = [REPO_ROOT / name for name in ("cdk.json", "requirements.txt", "requirements-bundled.txt")]
    for folder in SYNTH_SOURCE_DIRS:
        files.extend(
            p for p in (REPO_ROOT / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        )
    for path in sorted(files):
        digest.update(str(path.relative_to(REPO_ROOT)).encode())
        digest.update(path.read_bytes() if path.exists() else b"")
    return digest.hexdigest()
