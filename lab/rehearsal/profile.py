"""What the rehearsal's pipeline is given: the three accounts (cdk.json's placeholder ids, distinct
12-digit accounts on one engine), the source it watches, and the context document the synth step
reads from the pipeline account's SSM parameter, as on AWS.

That document also carries `stageSettings` for dev and prod, and these are the rehearsal's only
departures from the committed stages (docs/deviations.md):
- ENGINE_GAPS: what the engine cannot deploy (FIS experiment templates, Logs Insights query
  definitions, the public SSM parameter of the Powertools layer);
- the drill timings of cdk.json's `local` environment (LOCAL_TIMING_KEYS) for dev, so that the
  gameday fits a rehearsal of minutes; the AWS timings are checked by the time-budget test;
- prod's JWT issuer: a user pool of the local cloud (lab.rehearsal.issuer).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stage_client.target import REPO_ROOT

CDK_JSON = REPO_ROOT / "cdk.json"
PIPELINE_STACK_ID = "IngestionPipeline"
# The repository the local source action names (the git remote `lab` serves it).
LOCAL_REPOSITORY = "lab/ingestion-lab"
REMOTE_NAME = "lab"
# The engine has no FIS, no Logs Insights query definitions, and none of AWS's public parameters.
ENGINE_GAPS: dict[str, Any] = {
    "fisEnabled": False,
    "queryDefinitionsEnabled": False,
    "powertoolsLayerFromSsm": False,
}
# What sets how long the drills wait (DLQ trips, alarm evaluation, failure-mode cache).
LOCAL_TIMING_KEYS = ("workerTimeoutSeconds", "maxReceiveCount", "failureModeCacheSeconds", "alarms")


@dataclass(frozen=True)
class Accounts:
    pipeline: str
    dev: str
    prod: str
    region: str

    def of(self, env_name: str) -> str:
        return {"dev": self.dev, "prod": self.prod}[env_name]

    @property
    def targets(self) -> dict[str, str]:
        """The accounts the pipeline deploys to, by environment."""
        return {"dev": self.dev, "prod": self.prod}


@dataclass(frozen=True)
class Issuer:
    """prod's JWT issuer: a user pool on the local cloud, its app client (the audience) and a user
    whose tokens the prod smoke test sends."""

    pool_id: str
    client_id: str
    region: str

    @property
    def url(self) -> str:
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.pool_id}"


def cdk_context(cdk_json: Path = CDK_JSON) -> dict[str, Any]:
    return dict(json.loads(cdk_json.read_text(encoding="utf-8"))["context"])


def accounts(context: dict[str, Any]) -> Accounts:
    environments = context["ingestion"]["environments"]
    pipeline = context["pipeline"]
    return Accounts(
        pipeline=str(pipeline["account"]),
        dev=str(environments["dev"]["account"]),
        prod=str(environments["prod"]["account"]),
        region=str(pipeline["region"]),
    )


def watched_branch(context: dict[str, Any]) -> str:
    return str(context["pipeline"].get("branch", "main"))


def connection_arn(accounts: Accounts) -> str:
    """A connection of the pipeline account, in the codestar-connections form (both forms are valid;
    the source action checks that its role may use whichever is given)."""
    connection_id = uuid.uuid5(uuid.NAMESPACE_URL, f"lab-pipeline/{accounts.pipeline}")
    return f"arn:aws:codestar-connections:{accounts.region}:{accounts.pipeline}:connection/{connection_id}"


def stage_settings(context: dict[str, Any], issuer: Issuer) -> dict[str, dict[str, Any]]:
    """The rehearsal's stageSettings for dev and prod (see the module docstring)."""
    local = context["ingestion"]["environments"]["local"]
    timings = {key: local[key] for key in LOCAL_TIMING_KEYS if key in local}
    return {
        "dev": {**ENGINE_GAPS, **timings},
        "prod": {**ENGINE_GAPS, "jwtIssuer": issuer.url, "jwtAudience": [issuer.client_id]},
    }


def context_document(context: dict[str, Any], issuer: Issuer, branch: str) -> dict[str, Any]:
    """The JSON the synth step writes to cdk.context.json (the SSM parameter's value)."""
    accounts_ = accounts(context)
    return {
        "pipelineAccount": accounts_.pipeline,
        "devAccount": accounts_.dev,
        "prodAccount": accounts_.prod,
        "connectionArn": connection_arn(accounts_),
        "repository": LOCAL_REPOSITORY,
        "branch": branch,
        "stageSettings": stage_settings(context, issuer),
    }
