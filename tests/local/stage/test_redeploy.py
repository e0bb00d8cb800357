"""A deployed stage takes a change of its optional parts: flip the toggles, deploy again, it succeeds.

Issue 12, item 2: CDK passes values between the stage's stacks as CloudFormation exports, and AWS
refuses to remove (or change) an export another stack still imports ("Export ... cannot be deleted
as it is in use by ..."; CloudFormation user guide, using-cfn-stack-exports.html). Producers deploy
first, so a toggle whose consumer is optional locks the update on AWS. The local cloud enforces the
same lock (tests/local/engine/test_export_locks.py), so this test fails here when it would fail there,
naming the export and the stack that still imports it.

On a lab of its own (the session's stage stays as deployed): the stage with every optional part the
local configuration allows turned on (FIS is AWS-only), then all of them flipped at once; the stacks
deploy in order, so the first lock stops the deploy and is the one reported.

The stage key flips one way only: turned on, it is a new export and the queues, topics and tables
are re-encrypted in place; turned off, CloudFormation would refuse to delete its export while the
functions and observability stacks import it (README, "First deploy on AWS": `useKmsCmk` is chosen
at a stage's first deploy). So the key starts off here and the flip turns it on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab.harness import lifecycle
from lab.harness.cdk import DeployError
from lab.harness.deploy import deploy_stage
from lab.harness.paths import StateDir

# cdk.json keys of the local environment (a None removes the key: the model's default applies).
OPTIONAL_PARTS_ON: dict[str, Any] = {
    # The Lambda authorizer and its API key secret.
    "authMode": "apiKey",
    # The stage's customer-managed key, which encrypts queues, topics and tables: off first, since
    # only turning it on is a change a deployed stage takes (module docstring).
    "useKmsCmk": False,
    # The pipeline's checks role, which reads the stage's queues, table and API key.
    "pipelineAccount": "333333333333",
}
FLIPPED: dict[str, Any] = {
    "authMode": "jwt",
    "jwtIssuer": "https://issuer.example.com/",
    "jwtAudience": ["ingestion-lab-clients"],
    "useKmsCmk": True,
    "pipelineAccount": None,
}


def test_a_deployed_stage_takes_its_optional_parts_flipped(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "lab-redeploy")
    info = lifecycle.start(state, auth=True)
    try:
        deploy_stage(state, info, overrides=OPTIONAL_PARTS_ON, log=print)
        try:
            deploy_stage(state, info, overrides=FLIPPED, log=print)
        except DeployError as error:
            pytest.fail(f"redeploying the stage with {FLIPPED} failed, as it would on AWS:\n{error}")
    finally:
        lifecycle.down(state)
