"""The at-least-once mode's settings and its record of the duplicate deliveries it made.

Shared by the engine (which writes the record) and the lab (which reads it): standard library only.
The record is a JSON file: {"share": 0.05, "duplicates": {"<kind>": {"<resource arn>": n}}} with
kind one of KINDS, rewritten (atomically) after every duplicate.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Environment of the engine process (set by lab.localcloud.engine.start_engine).
SHARE_ENV = "LAB_ENGINE_DUPLICATE_SHARE"
STATS_ENV = "LAB_ENGINE_DUPLICATE_STATS"
SEED_ENV = "LAB_ENGINE_DUPLICATE_SEED"

SQS_RECEIVE = "sqsReceive"
RULE_DELIVERY = "ruleDelivery"
SNS_DELIVERY = "snsDelivery"
KINDS = (SQS_RECEIVE, RULE_DELIVERY, SNS_DELIVERY)


def parse_share(raw: str | None) -> float:
    """A share in [0, 1]; anything else is refused loudly rather than read as 0 (mode silently off)."""
    if raw is None or raw.strip() == "":
        return 0.0
    share = float(raw)
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"the duplicate share must be within 0..1, got {raw!r}")
    return share


@dataclass
class DuplicateRecord:
    """What the engine duplicated, per kind and resource; written to `path` on every change."""

    share: float
    path: Path | None
    counts: dict[str, Counter[str]] = field(default_factory=lambda: {kind: Counter() for kind in KINDS})
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, kind: str, resource: str) -> None:
        with self._lock:
            self.counts[kind][resource] += 1
            document = self.to_dict()
        if self.path is not None:
            partial = self.path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            partial.write_text(json.dumps(document, sort_keys=True))
            partial.replace(self.path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "share": self.share,
            "duplicates": {kind: dict(counts) for kind, counts in self.counts.items()},
        }


@dataclass(frozen=True)
class DuplicateCounts:
    """A reading of the record: duplicates made so far, per kind and resource."""

    share: float
    duplicates: dict[str, dict[str, int]]

    def of(self, kind: str, resource: str | None = None) -> int:
        counts = self.duplicates.get(kind, {})
        if resource is None:
            return sum(counts.values())
        return sum(n for name, n in counts.items() if name == resource or name.endswith(f":{resource}"))

    def since(self, earlier: DuplicateCounts) -> DuplicateCounts:
        return DuplicateCounts(
            self.share,
            {
                kind: {
                    name: n - earlier.duplicates.get(kind, {}).get(name, 0)
                    for name, n in counts.items()
                    if n - earlier.duplicates.get(kind, {}).get(name, 0)
                }
                for kind, counts in self.duplicates.items()
            },
        )


def read_counts(path: Path) -> DuplicateCounts:
    """The record as last written; no duplicate yet (or the mode off) reads as zeros."""
    try:
        document = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return DuplicateCounts(0.0, {kind: {} for kind in KINDS})
    return DuplicateCounts(float(document.get("share", 0.0)), dict(document.get("duplicates", {})))
