"""Run files: what `lab send` and the drills sent, one JSON line per accepted event, so that
`lab verify --run-id` and `lab send --duplicate-of` can find it again."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from stage_client.send import SendError, SentEvent
from stage_client.target import default_state_dir

RUNS_DIR_ENV = "LAB_RUNS_DIR"


def default_runs_dir() -> Path:
    """$LAB_RUNS_DIR, else runs/ in the lab's state dir (read at call time, so tests can redirect it)."""
    return Path(os.environ.get(RUNS_DIR_ENV) or default_state_dir() / "runs")


def save_run(run_id: str, events: Iterable[SentEvent], runs_dir: Path | None = None) -> Path:
    """One JSON line per accepted event: `lab verify --run-id` and `lab send --duplicate-of` read it."""
    runs_dir = runs_dir or default_runs_dir()
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = runs_dir / f"{run_id}.jsonl"
    with path.open("a", encoding="utf-8") as handle:
        for event in events:
            handle.write(json.dumps(event.to_dict(), sort_keys=True) + "\n")
    return path


def load_run(run_id: str, runs_dir: Path | None = None) -> list[SentEvent]:
    runs_dir = runs_dir or default_runs_dir()
    path = runs_dir / f"{run_id}.jsonl"
    if not path.exists():
        raise SendError(f"no run {run_id!r} in {runs_dir} (runs are recorded by `lab send`)")
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            events.append(SentEvent(**json.loads(line)))
    return events


def read_keys_file(path: Path) -> list[str]:
    """Keys one per line (blank lines and # comments ignored), or a run file's JSON lines."""
    keys = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        keys.append(json.loads(text)["idempotency_key"] if text.startswith("{") else text)
    return keys
