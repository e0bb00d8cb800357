"""When a stream mapping's batching window closes (engine patch stream_batching), and the wake of
the engine's poll loop at that moment."""

from __future__ import annotations

import threading

from lab.localcloud.engine_patches.batching_window import BatchingWindows, WakeAt, should_dispatch


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_window_opens_when_its_oldest_record_is_first_seen() -> None:
    clock = Clock()
    windows = BatchingWindows(clock)
    assert windows.opened_at("esm", position=0, end=3) == 100.0
    clock.now = 101.0
    # More records behind it do not move the window of the oldest one.
    assert windows.opened_at("esm", position=0, end=5) == 100.0


def test_the_records_after_a_dispatched_batch_keep_the_time_they_were_first_seen() -> None:
    clock = Clock()
    windows = BatchingWindows(clock)
    windows.opened_at("esm", position=0, end=3)  # records 0-2 seen at 100
    clock.now = 100.5
    windows.opened_at("esm", position=0, end=8)  # records 3-7 seen at 100.5
    clock.now = 102.0
    # A batch of 4 went (position 4): record 4 was first seen at 100.5, not now.
    assert windows.opened_at("esm", position=4, end=8) == 100.5
    # Everything went: the next record opens a window of its own.
    assert windows.opened_at("esm", position=8, end=9) == 102.0


def test_a_stream_that_restarts_lower_forgets_its_sightings() -> None:
    clock = Clock()
    windows = BatchingWindows(clock)
    windows.opened_at("esm", position=0, end=10)
    clock.now = 105.0
    assert windows.opened_at("esm", position=0, end=2) == 105.0


def test_mappings_have_windows_of_their_own_and_a_released_one_starts_again() -> None:
    clock = Clock()
    windows = BatchingWindows(clock)
    windows.opened_at("a", position=0, end=1)
    clock.now = 103.0
    assert windows.opened_at("b", position=0, end=1) == 103.0
    windows.release("a")
    assert windows.opened_at("a", position=0, end=1) == 103.0


def test_a_batch_goes_when_full_when_its_window_closed_or_at_once_without_a_window() -> None:
    def dispatch(pending: int, window: float, now: float) -> bool:
        return should_dispatch(
            pending=pending, batch_size=10, window_seconds=window, opened_at=100.0, now=now
        )

    assert not dispatch(pending=9, window=2, now=101.9)
    assert dispatch(pending=9, window=2, now=102.0)
    assert dispatch(pending=10, window=2, now=100.0)
    assert dispatch(pending=1, window=0, now=100.0)


def test_the_wake_comes_at_the_deadline_once_per_deadline() -> None:
    woken = threading.Event()
    calls: list[int] = []

    def wake() -> None:
        calls.append(1)
        woken.set()

    wake_at = WakeAt(wake)
    deadline = wake_at._clock() + 0.05
    wake_at.schedule("esm", deadline)
    wake_at.schedule("esm", deadline)  # a second pass holding the same batch
    assert woken.wait(2)
    threading.Event().wait(0.1)
    assert calls == [1]


def test_a_released_mapping_is_not_woken() -> None:
    woken = threading.Event()
    wake_at = WakeAt(woken.set)
    wake_at.schedule("esm", wake_at._clock() + 0.05)
    wake_at.release("esm")
    assert not woken.wait(0.2)
