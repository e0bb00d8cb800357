"""`lab up` / `lab down` / `lab status` of the local cloud with the stage deployed in it, as
functions that return data."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lab.harness.dashboard import ensure_dashboard
from lab.harness.deploy import deploy_stage
from lab.harness.paths import ENGINE_LOCK, RUNTIME_REQUIREMENTS, StateDir
from lab.harness.samples import send_sample_events
from lab.localcloud import agent_process, engine
from lab.localcloud.dashboard import process as dashboard_process
from lab.localcloud.state import CloudDir
from stage_client.target import Target, load_local_target


@dataclass(frozen=True)
class LabStatus:
    """What is running under one state dir."""

    state_dir: str
    engine_running: bool
    engine_healthy: bool
    endpoint_url: str | None
    auth: bool | None
    # The at-least-once mode's share of duplicated deliveries (0: off).
    duplicate_share: float | None
    agent_running: bool
    deployed: bool
    api_url: str | None
    agent: dict[str, Any] | None
    dashboard_url: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def start(
    state: StateDir | None = None,
    *,
    port: int | None = None,
    auth: bool | None = None,
    duplicate_share: float | None = None,
) -> engine.EngineInfo:
    """Start (or reuse) the engine only, ready to run this stage's functions: what the engine
    conformance tests need. IAM enforcement and the at-least-once mode's share default to
    LAB_AUTH / LAB_DUPLICATE_SHARE (both on unless turned off)."""
    state = (state or StateDir.default()).ensure()
    return engine.start_engine(
        state,
        function_requirements=RUNTIME_REQUIREMENTS,
        constraints=ENGINE_LOCK,
        port=port,
        auth=engine.auth_default() if auth is None else auth,
        duplicate_share=engine.duplicate_share_default() if duplicate_share is None else duplicate_share,
    )


def up(
    state: StateDir | None = None,
    *,
    port: int | None = None,
    auth: bool | None = None,
    sample_events: int = 0,
    log: Callable[[str], None] = print,
    overrides: dict[str, Any] | None = None,
) -> Target:
    """Engine + bootstrap + deploy (skipped when nothing changed) + outputs + metrics/alarm agent +
    the dashboard page. overrides: cdk.json keys of the local environment to deploy with."""
    state = (state or StateDir.default()).ensure()
    info = start(state, port=port, auth=auth)
    deploy_stage(state, info, log=log, overrides=overrides)
    agent_process.start_agent(state, info)
    ensure_dashboard(state, log=log)
    target = load_local_target(state.outputs_json)
    if sample_events:
        send_sample_events(target, sample_events, log=log)
    return target


def down(state: StateDir | None = None) -> dict[str, bool]:
    """Stop the agents and the engine (the engine's state is in memory: the next `up` redeploys):
    the lab's own agent and any other agent started under the state dir (the pipeline rehearsal runs
    one per target account, in .lab/pipeline/agents/<env>)."""
    state = state or StateDir.default()
    # Every one stopped (a list, not a short-circuiting any()).
    others = [
        agent_process.stop_agent(CloudDir(pid.parent)) for pid in sorted(state.root.glob("*/**/agent.pid"))
    ]
    stopped = {
        "dashboard": dashboard_process.stop_dashboard(state),
        "agent": agent_process.stop_agent(state),
        "other agents": any(others),
        "engine": engine.stop_engine(state),
    }
    for stale in (state.outputs_json, state.env_file, state.deploy_json, state.agent_status):
        stale.unlink(missing_ok=True)
    return stopped


def status(state: StateDir | None = None) -> LabStatus:
    state = state or StateDir.default()
    info = engine.read_engine(state)
    outputs = json.loads(state.outputs_json.read_text()) if state.outputs_json.exists() else None
    agent_state = json.loads(state.agent_status.read_text()) if state.agent_status.exists() else None
    return LabStatus(
        state_dir=str(state.root),
        engine_running=info is not None,
        engine_healthy=info is not None and engine.is_healthy(info.endpoint_url),
        endpoint_url=info.endpoint_url if info else None,
        auth=info.auth if info else None,
        duplicate_share=info.duplicate_share if info else None,
        agent_running=agent_process.agent_running(state),
        deployed=outputs is not None,
        api_url=outputs["apiUrl"] if outputs else None,
        agent=agent_state,
        dashboard_url=page.url if (page := dashboard_process.read_dashboard(state)) else None,
    )
