"""What every patch needs: find what it replaces (or stop the engine loudly) and log refusals."""

from __future__ import annotations

import logging
from typing import Any

# One logger for every correction, so `grep lab-engine .lab/engine.log` shows what the lab refused
# or added; WARNING because the engine logs at WARNING by default (LAB_ENGINE_LOG_LEVEL).
LOG = logging.getLogger("lab-engine")


def require(module: Any, *names: str) -> None:
    """Stop the engine when an upgrade renamed or removed what a patch replaces: running on without
    the correction would let through what AWS refuses, silently."""
    for name in names:
        if not callable(getattr(module, name, None)):
            raise SystemExit(f"engine_patches: ministack has no {module.__name__}.{name}: update the lab")


def require_state(module: Any, *names: str) -> None:
    """As `require`, for the module-level state (stores, locks, constants) a patch reads or writes."""
    for name in names:
        if not hasattr(module, name):
            raise SystemExit(f"engine_patches: ministack has no {module.__name__}.{name}: update the lab")
