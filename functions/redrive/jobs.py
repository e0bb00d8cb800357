"""Redrive jobs: start, status, cancel, and the job loop run by the asynchronous self-invocation.

Job statuses: PENDING -> RUNNING -> SUCCEEDED | CANCELLED | FAILED; CANCEL_REQUESTED is set by
POST /redrive/cancel on a job that has a live runner, which honours it before its next batch; a
job with no live runner is cancelled at once. A job that nears its invocation's timeout hands over
to a fresh invocation (same job id), so a long paced redrive is not bounded by one Lambda timeout
nor by the API's 30-second integration timeout.

One runner at a time (the lease: functions.redrive.job_store). Lambda may deliver an asynchronous
event more than once ("Even if your function doesn't return an error, it's possible for it to
receive the same event from Lambda multiple times",
https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html) and an Invoke may
be retried, so two invocations can be handed one job id; the second finds the lease taken and stops.
maxMessages is never exceeded: before each batch the runner records the batch as claimed, so a
runner killed after sending and before recording leaves its successor less budget, never more.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from functions.common.observability import fields, logger
from functions.redrive.job_store import (
    TERMINAL,
    JobNotFound,
    JobStatus,
    JobStore,
    RedriveJob,
    Refused,
    Run,
)
from functions.redrive.mover import DlqMover, Pacer
from functions.redrive.params import RedriveParams

# Hand over to a new invocation when less than this is left (one batch fits comfortably).
HANDOVER_MARGIN_MS = 20_000
# Receives in a row that bring no message this job has not seen: the DLQ has nothing more for it.
MAX_EMPTY_ROUNDS = 3
# A runner's lease ends this long after its invocation's deadline: clocks of two hosts may differ.
LEASE_SLACK_SECONDS = 5
# Asynchronous Invokes tried before a hand-over is given up (each with the SDK's own retries).
HANDOVER_ATTEMPTS = 2
# Conditional cancel attempts against a runner that takes or drops the lease at the same moment.
CANCEL_ATTEMPTS = 3


class JobConflict(RuntimeError):
    def __init__(self, job: RedriveJob) -> None:
        super().__init__(f"job {job.job_id} is {job.status.value}")
        self.job = job


class JobStartFailed(RuntimeError):
    pass


class JobHandoverFailed(RuntimeError):
    """No successor invocation could be started; the job stays RUNNING with no runner (cancellable)."""


@dataclass
class _Progress:
    """Per invocation: what the loop has seen, so that a message released and received again counts once."""

    seen: set[str] = field(default_factory=set)
    empty_rounds: int = 0
    batches: int = 0


class RedriveJobs:
    def __init__(
        self,
        *,
        store: JobStore,
        mover: DlqMover,
        start_async: Callable[[str], None],
        pacer_factory: Callable[[], Pacer],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._mover = mover
        self._start_async = start_async
        self._pacer_factory = pacer_factory
        self._clock = clock

    def start(self, params: RedriveParams) -> RedriveJob:
        job = self._store.create(params)
        try:
            self._start_async(job.job_id)
        except Exception as error:
            self._store.fail_unstarted(job.job_id, f"not started: {error}")
            raise JobStartFailed(str(error)) from error
        logger.info("redrive job started", extra=fields(REDRIVE_JOB_ID=job.job_id, PARAMS=params.to_item()))
        return job

    def status(self, job_id: str) -> RedriveJob:
        return self._store.get(job_id)

    def cancel(self, job_id: str) -> RedriveJob:
        """CANCELLED at once without a live runner, CANCEL_REQUESTED with one; JobConflict once finished."""
        for _ in range(CANCEL_ATTEMPTS):
            now = self._clock()
            cancelled = self._store.cancel_unowned(job_id, now=now)
            if isinstance(cancelled, RedriveJob):
                return cancelled
            if cancelled.current is None:
                raise JobNotFound(job_id)
            if cancelled.current.status in TERMINAL:
                raise JobConflict(cancelled.current)
            requested = self._store.request_cancel(job_id, now=now)
            if isinstance(requested, RedriveJob):
                return requested
        # The lease changed hands under every attempt: report the job as it is now.
        return self._store.get(job_id)

    def run(self, job_id: str, remaining_ms: Callable[[], int]) -> RedriveJob:
        """The job loop of one invocation: batches until done, cancelled, failed or handed over."""
        now = self._clock()
        runner = uuid.uuid4().hex
        lease_until = now + remaining_ms() / 1000 + LEASE_SLACK_SECONDS
        acquired = self._store.acquire(job_id, runner=runner, lease_until=lease_until, now=now)
        if isinstance(acquired, Refused):
            return self._not_runnable(job_id, acquired, now)
        run = Run.of(acquired)
        logger.info("redrive job runner started", extra=fields(REDRIVE_JOB_ID=job_id, RUNNER=runner))
        try:
            return self._loop(run, remaining_ms)
        except JobHandoverFailed:
            raise
        except Exception as error:
            logger.exception("redrive job failed", extra=fields(REDRIVE_JOB_ID=job_id))
            return self._finish(run, JobStatus.FAILED, error=repr(error))

    def _not_runnable(self, job_id: str, refused: Refused, now: float) -> RedriveJob:
        job = refused.current
        if job is None:
            raise JobNotFound(job_id)
        if job.status is JobStatus.CANCEL_REQUESTED and not job.has_live_runner(now):
            cancelled = self._store.cancel_unowned(job_id, now=now)
            job = cancelled if isinstance(cancelled, RedriveJob) else (cancelled.current or job)
        logger.info(
            "redrive job not runnable here",
            extra=fields(REDRIVE_JOB_ID=job_id, JOB_STATUS=job.status, RUNNER=job.runner),
        )
        return job

    def _loop(self, run: Run, remaining_ms: Callable[[], int]) -> RedriveJob:
        pacer = self._pacer_factory()
        progress = _Progress()
        # A short function timeout must not turn into an endless chain of hand-overs: the margin
        # shrinks to a third of this invocation's time, and every invocation moves a batch first.
        margin_ms = min(HANDOVER_MARGIN_MS, remaining_ms() // 3)
        while True:
            budget = run.params.max_messages - run.claimed
            if budget <= 0 or progress.empty_rounds >= MAX_EMPTY_ROUNDS:
                return self._finish(run, JobStatus.SUCCEEDED)
            # The pacing wait comes out of this invocation's time: hand over rather than overrun it.
            if progress.batches and remaining_ms() - pacer.wait_seconds() * 1000 < margin_ms:
                return self._hand_over(run)
            wanted = min(budget, pacer.batch_size)
            pacer.admit(wanted)
            recorded = self._store.checkpoint(run, claimed=run.claimed + wanted)
            if isinstance(recorded, Refused):
                return self._stopped(run, recorded)
            messages = self._mover.receive(wanted)
            if not messages:
                return self._finish(run, JobStatus.SUCCEEDED)
            outcome = self._mover.move(messages, run.params, job_id=run.job_id, seen=progress.seen)
            counters = outcome.counters
            pacer.refund(wanted - counters.moved - counters.quarantined - counters.failed)
            run.totals.add(counters)
            run.claimed += counters.moved + counters.quarantined
            progress.batches += 1
            progress.empty_rounds = 0 if outcome.new_messages else progress.empty_rounds + 1

    def _stopped(self, run: Run, refused: Refused) -> RedriveJob:
        """A write was refused: a cancel to honour, or this runner lost its lease (then it only stops)."""
        current = refused.current
        if (
            current is not None
            and current.status is JobStatus.CANCEL_REQUESTED
            and current.runner == run.runner
        ):
            return self._finish(run, JobStatus.CANCELLED)
        logger.warning(
            "redrive runner stopped: the job is no longer its to run",
            extra=fields(REDRIVE_JOB_ID=run.job_id, RUNNER=run.runner, JOB_STATUS=current and current.status),
        )
        return current or self._store.get(run.job_id)

    def _hand_over(self, run: Run) -> RedriveJob:
        released = self._store.release(run)
        if isinstance(released, Refused):
            return self._stopped(run, released)
        # From here on this invocation writes nothing: the job belongs to whichever runner takes the
        # lease. A start that failed may still have started a successor, and one started twice is
        # harmless (the second finds the lease taken), so the start is retried, never undone.
        failure: Exception | None = None
        for attempt in range(1, HANDOVER_ATTEMPTS + 1):
            try:
                self._start_async(run.job_id)
            except Exception as error:
                failure = error
                logger.warning(
                    "redrive hand-over start failed",
                    extra=fields(REDRIVE_JOB_ID=run.job_id, ATTEMPTS=attempt, REASON=repr(error)),
                )
            else:
                break
        else:
            logger.error(
                "redrive job left RUNNING without a runner: its successor could not be started; "
                "cancel it or start a new job",
                extra=fields(REDRIVE_JOB_ID=run.job_id, COUNTERS=run.totals.as_dict()),
            )
            raise JobHandoverFailed(run.job_id) from failure
        logger.info(
            "redrive job handed over", extra=fields(REDRIVE_JOB_ID=run.job_id, COUNTERS=run.totals.as_dict())
        )
        return released

    def _finish(self, run: Run, status: JobStatus, *, error: str | None = None) -> RedriveJob:
        finished = self._store.finish(run, status, error=error)
        if isinstance(finished, Refused):
            # This runner lost the job (its lease expired and another took it): it records nothing.
            logger.warning(
                "redrive runner could not record its outcome: the job is no longer its to finish",
                extra=fields(REDRIVE_JOB_ID=run.job_id, RUNNER=run.runner, JOB_STATUS=status),
            )
            return finished.current or self._store.get(run.job_id)
        logger.info(
            "redrive job finished",
            extra=fields(
                REDRIVE_JOB_ID=run.job_id, JOB_STATUS=finished.status, COUNTERS=run.totals.as_dict()
            ),
        )
        return finished
