"""What every drill shares: the timeline, the sampler, waiting with a deadline, and the restore guard."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from stage_client.audit import EventCounts
from stage_client.failure_mode import StageGuardrails
from stage_client.status import queue_depth, stage_alarms
from stage_client.target import Target

if TYPE_CHECKING:
    from lab.gamedays.injectors import Injector

T = TypeVar("T")
SAMPLE_INTERVAL_S = 2.0
RESTORE_ATTEMPTS = 5


class DrillFailed(AssertionError):
    """The drill could not observe what it claims (or observed the opposite)."""


class DrillInterrupted(BaseException):
    """SIGINT/SIGTERM during a drill. A BaseException so no `except Exception` in a step can
    swallow it on the way to the restore in the guard."""


@dataclass(frozen=True)
class TimelineEntry:
    t: float
    at: str
    label: str
    details: dict[str, Any]


@dataclass(frozen=True)
class Sample:
    t: float
    queues: dict[str, dict[str, int]]
    alarms: dict[str, str]


@dataclass
class DrillContext:
    """Handed to each drill: the target, its options, and the means to record and assert."""

    target: Target
    name: str
    events: int
    timeout_s: float
    injector: Injector
    guardrails: StageGuardrails
    printer: Callable[[str], None] = print
    timeline: list[TimelineEntry] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    # Events consumed from the audit queue during the drill, for the final exactly-once count.
    audit: EventCounts = field(default_factory=EventCounts)
    started: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining(self) -> float:
        return max(0.0, self.timeout_s - self.elapsed())

    def mark(self, label: str, **details: Any) -> None:
        """One timeline entry, printed at once with its offset from the drill's start."""
        entry = TimelineEntry(
            t=round(self.elapsed(), 1),
            at=datetime.now(UTC).isoformat(timespec="seconds"),
            label=label,
            details=details,
        )
        self.timeline.append(entry)
        extra = "  " + ", ".join(f"{k}={v}" for k, v in details.items()) if details else ""
        self.printer(f"[{entry.t:7.1f}s] {label}{extra}")

    def progress(self, text: str) -> None:
        self.printer(f"           ... {text} ({self.elapsed():.0f}s)")

    def check(self, condition: bool, message: str) -> None:
        if not condition:
            raise DrillFailed(message)

    def wait_until(
        self,
        what: str,
        probe: Callable[[], T | None],
        *,
        timeout_s: float | None = None,
        interval_s: float = 1.0,
        describe: Callable[[], str] | None = None,
        progress_every_s: float = 10.0,
    ) -> T:
        """Poll `probe` until it returns a truthy value; DrillFailed naming `what` on timeout."""
        budget = self.remaining() if timeout_s is None else min(timeout_s, self.remaining())
        deadline = time.monotonic() + budget
        next_progress = time.monotonic() + progress_every_s
        while True:
            self.injector.refresh(self)
            value = probe()
            if value:
                return value
            now = time.monotonic()
            if now >= deadline:
                state = f" (last seen: {describe()})" if describe else ""
                raise DrillFailed(f"timed out after {budget:.0f}s waiting for {what}{state}")
            if now >= next_progress:
                self.progress(f"waiting for {what}" + (f": {describe()}" if describe else ""))
                next_progress = now + progress_every_s
            time.sleep(interval_s)


class Sampler:
    """Samples queue depths and alarm states in the background for the report's chart."""

    def __init__(self, ctx: DrillContext, interval_s: float = SAMPLE_INTERVAL_S) -> None:
        self._ctx = ctx
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sampler-{ctx.name}", daemon=True)
        self.errors = 0

    def __enter__(self) -> Sampler:
        # boto3 clients are thread-safe once created; create them here, not in two threads at once.
        for service in ("sqs", "cloudwatch"):
            self._ctx.target.client(service)
        self.sample_once()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.sample_once()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.sample_once()

    def sample_once(self) -> None:
        try:
            queues = {}
            for label in ("main", "dlq", "quarantine"):
                depth = queue_depth(self._ctx.target, label, with_age=False)
                if depth is not None:
                    queues[label] = {
                        "visible": depth.visible,
                        "in_flight": depth.in_flight,
                        "delayed": depth.delayed,
                    }
            alarms = {alarm.name: alarm.state for alarm in stage_alarms(self._ctx.target)}
        except (ClientError, BotoCoreError):
            # A missed sample is a gap in the chart, not a reason to fail the drill.
            self.errors += 1
            return
        self._ctx.samples.append(Sample(t=round(self._ctx.elapsed(), 1), queues=queues, alarms=alarms))


@contextmanager
def restore_on_exit(ctx: DrillContext) -> Iterator[None]:
    """Whatever happens inside (pass, failure, exception, SIGINT, SIGTERM), end with the fault removed.

    Signals become DrillInterrupted so the stack unwinds through this `finally`; while restoring,
    a second Ctrl-C is deferred rather than allowed to abort the restore.
    """
    installed = threading.current_thread() is threading.main_thread()
    previous: dict[signal.Signals, Any] = {}
    pending: list[int] = []

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        raise DrillInterrupted(signal.Signals(signum).name)

    def defer(signum: int, _frame: FrameType | None) -> None:
        pending.append(signum)

    if installed:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, interrupt)
    try:
        yield
    finally:
        if installed:
            for sig in previous:
                signal.signal(sig, defer)
        try:
            _restore(ctx)
        finally:
            if installed:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        if pending:
            ctx.mark("signal received while restoring; restore completed first", signal=pending[0])


def _restore(ctx: DrillContext) -> None:
    last_error: Exception | None = None
    for attempt in range(RESTORE_ATTEMPTS):
        try:
            detail = ctx.injector.restore(ctx)
        except (ClientError, BotoCoreError, RuntimeError) as error:
            last_error = error
            time.sleep(min(5.0, 0.5 * 2**attempt))
            continue
        ctx.mark("restored: failure_mode none", **detail)
        ctx.facts["restored"] = True
        return
    ctx.facts["restored"] = False
    ctx.mark("RESTORE FAILED: set failure_mode none by hand (lab failure-mode reset)", error=str(last_error))


def entry_dicts(ctx: DrillContext) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return [asdict(e) for e in ctx.timeline], [asdict(s) for s in ctx.samples]
