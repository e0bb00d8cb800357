"""Pre-flight of the pipeline's synth step: every public SSM parameter the stages resolve at deploy
time (the pinned Powertools layer, the FIS extension where FIS is on) exists in each stage's region.

Without it, a release that is not published in a region passes every test and fails at the first
deploy, when CloudFormation cannot create the change set of the functions stack. Run after the
context is written to cdk.context.json: `python -m pipeline.preflight` (exit 1 names what is missing).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from app import PublicParameter, StageConfig, public_parameters
from pipeline.config import pipeline_stage_configs

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class RegionalParameter:
    """A public parameter one stage resolves, in that stage's region."""

    stage: str
    region: str
    parameter: PublicParameter

    @property
    def arn(self) -> str:
        # Public parameters belong to no account (Service Authorization Reference, AWS Systems
        # Manager: arn:${Partition}:ssm:${Region}:${Account}:parameter/${Name}, account empty).
        return f"arn:aws:ssm:{self.region}::parameter{self.parameter.name}"


def regional_parameters(stages: Iterable[StageConfig]) -> list[RegionalParameter]:
    """What the pipeline's stages resolve at deploy time, stage by stage."""
    return [
        RegionalParameter(stage.prefix, stage.region, parameter)
        for stage in stages
        for parameter in public_parameters(stage)
    ]


def file_context(root: Path = REPO_ROOT) -> dict[str, Any]:
    """The context the CDK CLI gives the app, from the files: cdk.context.json (the synth step's
    copy of the context parameter), then cdk.json's "context", which wins where both set a key
    (the CLI's order: command line, cdk.json, cdk.context.json)."""
    context: dict[str, Any] = {}
    local = root / "cdk.context.json"
    if local.exists():
        context.update(json.loads(local.read_text(encoding="utf-8")))
    context.update(json.loads((root / "cdk.json").read_text(encoding="utf-8"))["context"])
    return context


def check(item: RegionalParameter, ssm: Any) -> str | None:
    """Why the parameter cannot be read in its stage's region (naming the release), or None."""
    where = f"{item.stage} ({item.region})"
    try:
        ssm.get_parameter(Name=item.parameter.name)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "ParameterNotFound":
            return (
                f"{where}: {item.parameter.release} is not published in {item.region}: the public "
                f"parameter {item.parameter.name} does not exist there"
            )
        return f"{where}: cannot read {item.parameter.name} ({error})"
    except BotoCoreError as error:
        return f"{where}: cannot read {item.parameter.name} ({error})"
    return None


def run(parameters: Iterable[RegionalParameter], ssm_client: Callable[[str], Any]) -> int:
    """Check every parameter, print one line each; 1 when any is missing."""
    failed = 0
    for item in parameters:
        problem = check(item, ssm_client(item.region))
        if problem is None:
            print(f"preflight: {item.stage} ({item.region}): {item.parameter.name} exists")
        else:
            failed += 1
            print(f"preflight: FAILED {problem}", file=sys.stderr)
    return 1 if failed else 0


def main() -> int:
    _, dev, prod = pipeline_stage_configs(file_context())
    clients: dict[str, Any] = {}

    def ssm_client(region: str) -> Any:
        if region not in clients:
            clients[region] = boto3.client("ssm", region_name=region)
        return clients[region]

    return run(regional_parameters([dev, prod]), ssm_client)


if __name__ == "__main__":
    sys.exit(main())
