"""CPU accounting of a bench phase: this process's own CPU from /proc, its children, per event."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from lab.harness.cpu import CpuPerEvent, CpuSample, children, cpu_seconds, per_event

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs Linux /proc")


def test_cpu_seconds_grow_with_work_done() -> None:
    before = cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    assert cpu_seconds(os.getpid()) - before >= 0.15
    assert cpu_seconds(2**22 + 12345) == 0.0  # no such process


def test_children_are_found_by_parent() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        assert child.pid in children(os.getpid())
    finally:
        child.kill()
        child.wait()


def test_per_event_counts_each_worker_from_its_own_start() -> None:
    before = CpuSample(engine=10.0, functions={1: 2.0}, agent=1.0)
    after = CpuSample(engine=12.0, functions={1: 3.0, 2: 1.0}, agent=1.5)
    figures = per_event(before, after, events=100)
    assert figures.engine_ms == pytest.approx(20.0)
    assert figures.functions_ms == pytest.approx(20.0)  # (3 - 2) + (1 - 0) s over 100 events
    assert figures.agent_ms == pytest.approx(5.0)


def test_the_ceiling_is_the_cores_over_the_cpu_per_event() -> None:
    figures = CpuPerEvent(engine_ms=20.0, functions_ms=15.0, agent_ms=5.0)
    assert figures.ceiling(2) == pytest.approx(50.0)  # 2,000 ms of CPU per second / 40 ms per event
    assert "at most 50 events/s on 2 cores" in figures.line(2)
    assert "at most" not in figures.line()
