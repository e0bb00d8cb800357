"""How the local tier's session deploys the IngestionLocal stage (tests/local/conftest.py, local_target).

As the pipeline configures it: a pipelineAccount adds the checks role the pipeline's post-deploy
steps assume (tests/local/stage/test_pipeline_steps.py) and changes nothing else in the stage, so one
deployment serves every test of the deployed stage (a second `cdk deploy` cost minutes on 2 cores).
"""

from __future__ import annotations

from typing import Any

from lab.localcloud.engine import ACCOUNT_ID

SESSION_STAGE_OVERRIDES: dict[str, Any] = {"pipelineAccount": ACCOUNT_ID}
