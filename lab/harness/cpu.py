"""CPU time of the local cloud's processes over a bench phase (Linux /proc): the engine, its
Lambda workers (the deployed functions) and the metrics/alarm agent.

CPU seconds per event move far less than wall-clock rates when other work shares the machine's
cores: they are what `make bench` compares across runs on a loaded machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str] | None:
    try:
        # The fields after the command name (which may hold spaces): state [0], ppid [1],
        # utime [11], stime [12].
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one live process (0 when it is gone or there is no procfs)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def children(pid: int) -> list[int]:
    """The live processes whose parent is pid."""
    found: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


@dataclass(frozen=True)
class CpuSample:
    engine: float
    # Per worker pid: a worker that exits between two samples takes its CPU with it (the figure is
    # then a lower bound); one started between them counts from zero.
    functions: dict[int, float]
    agent: float


def sample(engine_pid: int, agent_pid: int | None) -> CpuSample:
    return CpuSample(
        engine=cpu_seconds(engine_pid),
        functions={child: cpu_seconds(child) for child in children(engine_pid)},
        agent=cpu_seconds(agent_pid) if agent_pid else 0.0,
    )


@dataclass(frozen=True)
class CpuPerEvent:
    """Milliseconds of CPU per event between two samples."""

    engine_ms: float
    functions_ms: float
    agent_ms: float

    @property
    def total_ms(self) -> float:
        return self.engine_ms + self.functions_ms + self.agent_ms

    def ceiling(self, cores: int) -> float:
        """Events/s the machine's cores could give at this CPU per event, every core busy with
        nothing else: what no change outside these three processes' CPU per event can exceed."""
        return cores * 1000.0 / self.total_ms if self.total_ms > 0 else float("nan")

    def line(self, cores: int | None = None) -> str:
        text = (
            f"engine {self.engine_ms:.1f} ms, functions {self.functions_ms:.1f} ms, "
            f"agent {self.agent_ms:.1f} ms CPU per event"
        )
        if cores:
            text += f" = {self.total_ms:.1f} ms: at most {self.ceiling(cores):.0f} events/s on {cores} cores"
        return text


def per_event(before: CpuSample, after: CpuSample, events: int) -> CpuPerEvent:
    if events <= 0:
        nan = float("nan")
        return CpuPerEvent(nan, nan, nan)
    functions = sum(seconds - before.functions.get(pid, 0.0) for pid, seconds in after.functions.items())
    scale = 1000.0 / events
    return CpuPerEvent(
        engine_ms=(after.engine - before.engine) * scale,
        functions_ms=functions * scale,
        agent_ms=(after.agent - before.agent) * scale,
    )
