"""Where one running local cloud keeps its files: the engine's record and log, its Lambda work
folders, and the metrics/alarm agent's pid, log and status. A harness gives the folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CloudDir:
    """The local cloud's files under one folder; tests use their own so they never touch a developer's."""

    root: Path

    def ensure(self) -> CloudDir:
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
        """TMPDIR of the engine: its Lambda work folders, removed when it stops."""
        return self.root / "engine-tmp"

    @property
    def duplicates_json(self) -> Path:
        """What the engine's at-least-once mode duplicated (engine_patches/delivery_stats.py)."""
        return self.root / "duplicates.json"

    @property
    def codepipeline_dir(self) -> Path:
        """The engine's CodePipeline pipelines (engine_patches/pipeline_store.py), per account and region."""
        return self.root / "codepipeline"

    @property
    def agent_pid(self) -> Path:
        return self.root / "agent.pid"

    @property
    def agent_log(self) -> Path:
        return self.root / "agent.log"

    @property
    def agent_status(self) -> Path:
        return self.root / "agent-status.json"
