"""When a stream event source mapping's batching window closes, and a wake of the engine's poll loop
at that moment: the pure part of stream_batching (no ministack import, so the unit tier tests it).

A window opens when the poller first sees the oldest record still pending (a write wakes the poll
loop at once, so that is the write time within a pass). ApproximateCreationDateTime is not used:
the engine, like DynamoDB, gives it in whole seconds, so a window measured from it would close up to
a second early and shrink the batches this exists to fill.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class BatchingWindows:
    """Per mapping, the stream end positions the poller saw and when it first saw each; so the
    time the oldest pending record was first seen is known however many batches went before it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # esm id -> (end position seen, when), oldest first: sighting i covers the records from the
        # previous sighting's end up to its own.
        self._sightings: dict[str, deque[tuple[int, float]]] = {}
        self._lock = threading.Lock()

    def opened_at(self, esm_id: str, position: int, end: int) -> float:
        """When the window of the record at `position` opened (the first sighting of it), noting
        that the records up to `end` are seen now."""
        now = self._clock()
        with self._lock:
            seen = self._sightings.setdefault(esm_id, deque())
            if seen and end < seen[-1][0]:
                # The stream restarted lower (its table was re-created): earlier sightings describe
                # records that no longer exist.
                seen.clear()
            while seen and seen[0][0] <= position:
                seen.popleft()
            if not seen or seen[-1][0] < end:
                seen.append((end, now))
            return seen[0][1]

    def release(self, esm_id: str) -> None:
        with self._lock:
            self._sightings.pop(esm_id, None)


class WakeAt:
    """Calls `wake` when a mapping's window closes: the poll loop otherwise sleeps up to a second
    after a pass that dispatched nothing, which would hold a record up to W + 1 s. One timer per
    mapping and deadline, however many passes hold the same batch."""

    def __init__(self, wake: Callable[[], None], clock: Callable[[], float] = time.monotonic) -> None:
        self._wake = wake
        self._clock = clock
        self._timers: dict[str, tuple[float, threading.Timer]] = {}
        self._lock = threading.Lock()

    def schedule(self, esm_id: str, deadline: float) -> None:
        with self._lock:
            current = self._timers.get(esm_id)
            if current is not None and current[0] == deadline:
                return
            if current is not None:
                current[1].cancel()
            timer = threading.Timer(max(0.0, deadline - self._clock()), self._wake)
            timer.daemon = True
            self._timers[esm_id] = (deadline, timer)
            timer.start()

    def release(self, esm_id: str) -> None:
        with self._lock:
            current = self._timers.pop(esm_id, None)
        if current is not None:
            current[1].cancel()


def should_dispatch(
    *, pending: int, batch_size: int, window_seconds: float, opened_at: float, now: float
) -> bool:
    """A batch goes when it is full (BatchSize records read from the stream), when its window has
    closed, or at once when the mapping has no window (MaximumBatchingWindowInSeconds 0)."""
    return pending >= batch_size or window_seconds <= 0 or now >= opened_at + window_seconds
