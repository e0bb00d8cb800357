"""`lab down` (make lab-down) stops every agent started under the state dir, the pipeline
rehearsal's per-account ones included (they outlived the engine before)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lab.harness import lifecycle
from lab.harness.paths import StateDir
from lab.localcloud.agent_process import AGENT_MODULE


def test_down_stops_the_rehearsals_agents_too(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "lab")
    agents = []
    for env_name in ("dev", "prod"):
        folder = state.root / "pipeline" / "agents" / env_name
        folder.mkdir(parents=True)
        # A stand-in whose command line names the agent module, as process_runs checks.
        process = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)", AGENT_MODULE], start_new_session=True
        )
        (folder / "agent.pid").write_text(str(process.pid))
        agents.append(process)
    try:
        stopped = lifecycle.down(state)
        assert stopped["other agents"] is True
        for process in agents:
            assert process.wait(timeout=10) is not None
        assert not list(state.root.glob("*/**/agent.pid"))
    finally:
        for process in agents:
            process.kill()
