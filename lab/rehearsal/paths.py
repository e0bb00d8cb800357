"""Where the rehearsal keeps its files: under the local cloud's state dir (.lab/pipeline/ by default),
next to the engine it runs on; the record of every run goes to reports/."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lab.harness.paths import StateDir
from lab.localcloud.codepipeline.execution import PipelineHome
from lab.localcloud.state import CloudDir
from stage_client.target import REPO_ROOT

REPORTS_DIR_ENV = "LAB_REPORTS_DIR"


def default_reports_dir() -> Path:
    return Path(os.environ.get(REPORTS_DIR_ENV) or REPO_ROOT / "reports")


@dataclass(frozen=True)
class RehearsalDir:
    """The rehearsal's folder inside one state dir."""

    state: StateDir
    reports: Path

    @classmethod
    def default(cls) -> RehearsalDir:
        return cls(StateDir.default(), default_reports_dir())

    @property
    def root(self) -> Path:
        return self.state.root / "pipeline"

    @property
    def home(self) -> PipelineHome:
        """Executions, their work folders, stage locks and answers (lab.localcloud.codepipeline)."""
        return PipelineHome(self.root)

    @property
    def repository(self) -> Path:
        """The bare repository behind the `lab` git remote."""
        return self.root / "repo.git"

    @property
    def setup_json(self) -> Path:
        """What `init` set up, and on which engine (a restarted engine has lost it all)."""
        return self.root / "setup.json"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def build_venv(self) -> Path:
        """The builds' Python: the synth's .venv and the post-deploy steps' `python`."""
        return self.cache / "venv"

    @property
    def npm_prefix(self) -> Path:
        """Where the builds' `npm install -g` installs (the CDK CLI, cdk-assets)."""
        return self.cache / "npm-global"

    @property
    def first_deploy(self) -> Path:
        return self.root / "first-deploy"

    def agent_dir(self, env_name: str) -> CloudDir:
        """The metrics/alarm agent watching one target account."""
        return CloudDir(self.root / "agents" / env_name)

    def process_log(self, execution_id: str) -> Path:
        return self.home.executions_dir / f"{execution_id}.out"
