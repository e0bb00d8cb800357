"""Where the harness keeps the deployed stage's files (the state dir: .lab/ or LAB_STATE_DIR) and
what it deploys: the CDK CLI, the stage's name, the functions' runtime requirements."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lab.localcloud.state import CloudDir
from stage_client.target import OUTPUTS_FILE_NAME, REPO_ROOT, default_state_dir

RUNTIME_REQUIREMENTS = REPO_ROOT / "requirements-runtime.txt"
# Every package of the engine's virtualenv (the engine's pins plus the functions' runtime packages,
# lab.localcloud.engine.engine_requirements) resolved by `make lock`: installed as constraints.
ENGINE_LOCK = REPO_ROOT / "lab" / "harness" / "requirements-engine.lock"
CDK_BIN = REPO_ROOT / "node_modules" / ".bin" / "cdk"
STAGE_NAME = "IngestionLocal"
# The cdk.json environment STAGE_NAME is built from.
LOCAL_ENV_NAME = "local"


@dataclass(frozen=True)
class StateDir(CloudDir):
    """The local cloud's files plus the deployed stage's: outputs, env file, deploy record, assembly."""

    @classmethod
    def default(cls) -> StateDir:
        return cls(default_state_dir())

    def ensure(self) -> StateDir:
        self.root.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def outputs_json(self) -> Path:
        """Read by stage_client.target.load_local_target (the `local` target)."""
        return self.root / OUTPUTS_FILE_NAME

    @property
    def env_file(self) -> Path:
        return self.root / "env"

    @property
    def deploy_json(self) -> Path:
        return self.root / "deploy.json"

    @property
    def cloud_assembly(self) -> Path:
        return self.root / "cdk.out"

    @property
    def cdk_log(self) -> Path:
        return self.root / "cdk.log"
