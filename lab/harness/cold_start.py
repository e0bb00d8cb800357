"""Cold-start import cost of each handler against `import boto3`, each timed in fresh processes
of the interpreter the local cloud runs the functions on, with the environment each function is
deployed with (so POWERTOOLS_TRACE_DISABLED and the log level are what the stage sets)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lab.harness.bench_report import median

# Prints the seconds an import statement takes in a process that has imported nothing else
# (the interpreter's own start-up is outside the timed span).
_TIMER = "import time; started = time.perf_counter(); import {module}; print(time.perf_counter() - started)"


@dataclass(frozen=True)
class ImportCost:
    module: str
    seconds: float
    baseline_seconds: float

    @property
    def ratio(self) -> float:
        return self.seconds / self.baseline_seconds


def import_seconds(python: Path, module: str, *, env: Mapping[str, str], cwd: Path, runs: int = 5) -> float:
    """The median, over `runs` fresh processes, of the seconds `import module` takes."""
    timings = []
    for _ in range(runs):
        result = subprocess.run(  # noqa: S603 - the engine's interpreter and a fixed timing script
            [str(python), "-c", _TIMER.format(module=module)],
            env=dict(env),
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        )
        timings.append(float(result.stdout.strip().splitlines()[-1]))
    return median(timings)


def handler_import_costs(
    python: Path,
    handlers: Mapping[str, Mapping[str, str]],
    *,
    base_env: Mapping[str, str],
    cwd: Path,
    runs: int = 5,
) -> list[ImportCost]:
    """handlers: module -> the function's deployed environment variables. The baseline and the
    handler are timed in alternation, so that a load spike on a shared machine weighs on both."""
    costs = []
    for module, env in sorted(handlers.items()):
        baseline, handler = [], []
        for _ in range(runs):
            baseline.append(import_seconds(python, "boto3", env=base_env, cwd=cwd, runs=1))
            handler.append(import_seconds(python, module, env={**base_env, **env}, cwd=cwd, runs=1))
        costs.append(ImportCost(module, median(handler), median(baseline)))
    return costs
