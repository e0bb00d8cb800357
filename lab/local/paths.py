"""Where the local cloud keeps its files: the state dir (.lab/ or LAB_STATE_DIR) and the installs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ENGINE_REQUIREMENTS = Path(__file__).with_name("requirements-engine.txt")
RUNTIME_REQUIREMENTS = REPO_ROOT / "requirements-runtime.txt"
CDK_BIN = REPO_ROOT / "node_modules" / ".bin" / "cdk"
# Run by the engine's own interpreter as a file (not as lab.local...): the engine venv has no lab
# package, and the functions it runs must import only their deployed asset.
ENGINE_LAUNCHER = Path(__file__).with_name("engine_main.py")

STAGE_NAME = "IngestionLocal"
REGION = "us-east-1"
ACCOUNT_ID = "000000000000"


def default_state_dir() -> Path:
    return Path(os.environ.get("LAB_STATE_DIR") or REPO_ROOT / ".lab")


def engine_venv_dir() -> Path:
    """The engine's virtualenv: shared by every state dir (an install, not state)."""
    return Path(os.environ.get("LAB_ENGINE_VENV") or REPO_ROOT / ".venv-engine")


@dataclass(frozen=True)
class StateDir:
    """The files of one running lab; tests use their own so they never touch the developer's."""

    root: Path

    @classmethod
    def default(cls) -> StateDir:
        return cls(default_state_dir())

    def ensure(self) -> StateDir:
        self.root.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def engine_json(self) -> Path:
        return self.root / "engine.json"

    @property
    def engine_log(self) -> Path:
        return self.root / "engine.log"

    @property
    def engine_tmp(self) -> Path:
        """TMPDIR of the engine: its Lambda work folders, removed by `down`."""
        return self.root / "engine-tmp"

    @property
    def agent_pid(self) -> Path:
        return self.root / "agent.pid"

    @property
    def agent_log(self) -> Path:
        return self.root / "agent.log"

    @property
    def agent_status(self) -> Path:
        return self.root / "agent-status.json"

    @property
    def outputs_json(self) -> Path:
        return self.root / "outputs.json"

    @property
    def env_file(self) -> Path:
        return self.root / "env"

    @property
    def deploy_json(self) -> Path:
        return self.root / "deploy.json"

    @property
    def cloud_assembly(self) -> Path:
        return self.root / "cdk.out"
