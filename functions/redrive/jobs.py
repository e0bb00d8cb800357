"""Redrive jobs: the jobs table (PK jobId) and the job loop run by the asynchronous self-invocation.

Job statuses: PENDING -> RUNNING -> SUCCEEDED | CANCELLED | FAILED; CANCEL_REQUESTED is set by
POST /redrive/cancel on a job that has a live runner, which honours it before its next batch; a
job with no live runner is cancelled at once. A job that nears its invocation's timeout hands over
to a fresh invocation (same job id), so a long paced redrive is not bounded by one Lambda timeout
nor by the API's 30-second integration timeout.

One runner at a time: an invocation runs a job only after taking its lease (runner id, leaseUntil
= its own deadline) with a conditional write, and every later write of that runner is conditioned
on still holding it. Lambda may deliver an asynchronous event more than once ("Even if your
function doesn't return an error, it's possible for it to receive the same event from Lambda
multiple times", https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html)
and an Invoke may be retried, so two invocations can be handed one job id; the second finds the
lease taken and stops.
maxMessages is never exceeded: before each batch the runner records the batch as claimed, so a
runner killed after sending and before recording leaves its successor less budget, never more.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

from functions.common.names import REDRIVE_JOBS_PARTITION_KEY, REDRIVE_JOBS_TTL_ATTRIBUTE
from functions.common.observability import fields, logger
from functions.common.state_table import is_conditional_check_failure, iso, plain_item
from functions.redrive.mover import Counters, DlqMover, Pacer
from functions.redrive.params import RedriveParams

_SERIALIZER = TypeSerializer()
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


class JobStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    CANCEL_REQUESTED = "CANCEL_REQUESTED"
    CANCELLED = "CANCELLED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


TERMINAL = frozenset({JobStatus.CANCELLED, JobStatus.SUCCEEDED, JobStatus.FAILED})


@dataclass(frozen=True)
class RedriveJob:
    """One redrive_jobs item, parsed once."""

    job_id: str
    status: JobStatus
    params: RedriveParams
    counters: Counters
    created_at: str
    updated_at: str
    expires_at: int
    # Messages counted against maxMessages: the sent ones, plus the batch of a runner that died
    # before recording what it sent (claimed >= moved + quarantined).
    claimed: int = 0
    runner: str | None = None
    lease_until: float = 0.0
    finished_at: str | None = None
    error: str | None = None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> RedriveJob:
        """From a low-level DynamoDB item (attribute-value form)."""
        plain = plain_item(item)
        counters = Counters.from_dict(plain.get("counters"))
        return cls(
            job_id=str(plain[REDRIVE_JOBS_PARTITION_KEY]),
            status=JobStatus(plain["status"]),
            params=RedriveParams.from_item(plain["params"]),
            counters=counters,
            created_at=str(plain.get("createdAt", "")),
            updated_at=str(plain.get("updatedAt", "")),
            expires_at=int(plain.get(REDRIVE_JOBS_TTL_ATTRIBUTE, 0)),
            claimed=int(plain.get("claimed", counters.moved + counters.quarantined)),
            runner=plain.get("runner"),
            lease_until=float(plain.get("leaseUntil", 0)),
            finished_at=plain.get("finishedAt"),
            error=plain.get("error"),
        )

    def has_live_runner(self, now: float) -> bool:
        return self.runner is not None and self.lease_until >= now

    def to_response(self) -> dict[str, Any]:
        """The job as GET /redrive/status and the job run answer it."""
        response: dict[str, Any] = {
            "jobId": self.job_id,
            "status": self.status.value,
            "params": self.params.to_item(),
            "counters": self.counters.as_dict(),
            "claimed": self.claimed,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            REDRIVE_JOBS_TTL_ATTRIBUTE: self.expires_at,
        }
        optional = {"runner": self.runner, "finishedAt": self.finished_at, "error": self.error}
        response.update({name: value for name, value in optional.items() if value is not None})
        if self.runner is not None:
            response["leaseUntil"] = iso(self.lease_until)
        return response


@dataclass(frozen=True)
class Refused:
    """A conditional job write that did not hold; the job as it was (None: there is no such job)."""

    current: RedriveJob | None


class JobNotFound(LookupError):
    pass


class JobConflict(RuntimeError):
    def __init__(self, job: RedriveJob) -> None:
        super().__init__(f"job {job.job_id} is {job.status.value}")
        self.job = job


class JobStartFailed(RuntimeError):
    pass


class JobHandoverFailed(RuntimeError):
    """No successor invocation could be started; the job stays RUNNING with no runner (cancellable)."""


def _values(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _SERIALIZER.serialize(value) for name, value in values.items()}


@dataclass
class Run:
    """What one runner holds of its job while it runs it."""

    job_id: str
    runner: str
    lease_until: float
    params: RedriveParams
    totals: Counters
    claimed: int

    @classmethod
    def of(cls, job: RedriveJob) -> Run:
        assert job.runner is not None
        return cls(job.job_id, job.runner, job.lease_until, job.params, job.counters, job.claimed)


class JobStore:
    def __init__(
        self, client: Any, table_name: str, *, ttl_days: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._client = client
        self._table = table_name
        self._ttl_seconds = ttl_days * 86400
        self._clock = clock

    def _key(self, job_id: str) -> dict[str, Any]:
        return {REDRIVE_JOBS_PARTITION_KEY: {"S": job_id}}

    def create(self, params: RedriveParams) -> RedriveJob:
        now = self._clock()
        item = _values(
            {
                REDRIVE_JOBS_PARTITION_KEY: str(uuid.uuid4()),
                "status": JobStatus.PENDING.value,
                "params": params.to_item(),
                "counters": Counters().as_dict(),
                "claimed": 0,
                "createdAt": iso(now),
                "updatedAt": iso(now),
                REDRIVE_JOBS_TTL_ATTRIBUTE: int(now) + self._ttl_seconds,
            }
        )
        self._client.put_item(
            TableName=self._table,
            Item=item,
            ConditionExpression="attribute_not_exists(#pk)",
            ExpressionAttributeNames={"#pk": REDRIVE_JOBS_PARTITION_KEY},
        )
        return RedriveJob.from_item(item)

    def get(self, job_id: str) -> RedriveJob:
        item = self._client.get_item(TableName=self._table, Key=self._key(job_id), ConsistentRead=True).get(
            "Item"
        )
        if not item:
            raise JobNotFound(job_id)
        return RedriveJob.from_item(item)

    # --- one conditional write per change -----------------------------------------------------------
    def fail_unstarted(self, job_id: str, error: str) -> RedriveJob | Refused:
        return self._update(
            job_id,
            sets={"#status": JobStatus.FAILED.value, "#error": error, "finishedAt": iso(self._clock())},
            condition="#status = :pending",
            values={":pending": JobStatus.PENDING.value},
        )

    def acquire(self, job_id: str, *, runner: str, lease_until: float, now: float) -> RedriveJob | Refused:
        """Become the job's runner: PENDING, or RUNNING whose runner's lease is over (it died)."""
        return self._update(
            job_id,
            sets={"#status": JobStatus.RUNNING.value, "runner": runner, "leaseUntil": math.ceil(lease_until)},
            condition="#status IN (:pending, :running) "
            "AND (attribute_not_exists(runner) OR leaseUntil < :now)",
            values={
                ":pending": JobStatus.PENDING.value,
                ":running": JobStatus.RUNNING.value,
                ":now": int(now),
            },
        )

    def checkpoint(self, run: Run, *, claimed: int) -> RedriveJob | Refused:
        """Record the counters and claim; refused once a cancel was requested or the lease was lost."""
        return self._update(
            run.job_id,
            sets={"counters": run.totals.as_dict(), "claimed": claimed},
            condition="#status = :running AND runner = :runner",
            values={":running": JobStatus.RUNNING.value, ":runner": run.runner},
        )

    def release(self, run: Run) -> RedriveJob | Refused:
        """Record progress and give the lease up, for the successor of a hand-over."""
        return self._update(
            run.job_id,
            sets={"counters": run.totals.as_dict(), "claimed": run.claimed, "leaseUntil": 0},
            removes=("runner",),
            condition="#status = :running AND runner = :runner",
            values={":running": JobStatus.RUNNING.value, ":runner": run.runner},
        )

    def finish(self, run: Run, status: JobStatus, *, error: str | None = None) -> RedriveJob | Refused:
        sets: dict[str, Any] = {
            "#status": status.value,
            "counters": run.totals.as_dict(),
            "claimed": run.claimed,
            "finishedAt": iso(self._clock()),
            "leaseUntil": 0,
        }
        if error is not None:
            sets["#error"] = error
        return self._update(
            run.job_id,
            sets=sets,
            removes=("runner",),
            condition="#status IN (:running, :cancelRequested) AND runner = :runner",
            values={
                ":running": JobStatus.RUNNING.value,
                ":cancelRequested": JobStatus.CANCEL_REQUESTED.value,
                ":runner": run.runner,
            },
        )

    def cancel_unowned(self, job_id: str, *, now: float) -> RedriveJob | Refused:
        """CANCELLED at once when no runner holds a live lease (never started, or its runner died)."""
        return self._update(
            job_id,
            sets={"#status": JobStatus.CANCELLED.value, "finishedAt": iso(self._clock()), "leaseUntil": 0},
            removes=("runner",),
            condition="#status IN (:pending, :running, :cancelRequested) "
            "AND (attribute_not_exists(runner) OR leaseUntil < :now)",
            values={
                ":pending": JobStatus.PENDING.value,
                ":running": JobStatus.RUNNING.value,
                ":cancelRequested": JobStatus.CANCEL_REQUESTED.value,
                ":now": int(now),
            },
        )

    def request_cancel(self, job_id: str, *, now: float) -> RedriveJob | Refused:
        """CANCEL_REQUESTED for the live runner to honour before its next batch."""
        return self._update(
            job_id,
            sets={"#status": JobStatus.CANCEL_REQUESTED.value},
            condition="#status IN (:running, :cancelRequested) "
            "AND attribute_exists(runner) AND leaseUntil >= :now",
            values={
                ":running": JobStatus.RUNNING.value,
                ":cancelRequested": JobStatus.CANCEL_REQUESTED.value,
                ":now": int(now),
            },
        )

    def _update(
        self,
        job_id: str,
        *,
        sets: dict[str, Any],
        condition: str,
        values: dict[str, Any],
        removes: tuple[str, ...] = (),
    ) -> RedriveJob | Refused:
        """One conditional UpdateItem (updatedAt included); the job as it was when the condition failed."""
        # Attribute names that are DynamoDB reserved words (status, error) go through #placeholders.
        assignments = {**sets, "updatedAt": iso(self._clock())}
        placeholders = {name: f":set{index}" for index, name in enumerate(assignments)}
        expression = "SET " + ", ".join(f"{name} = {placeholders[name]}" for name in assignments)
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        names = {name: name.removeprefix("#") for name in (*assignments, "#status") if name.startswith("#")}
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=self._key(job_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_values(
                    {placeholders[name]: value for name, value in assignments.items()} | values
                ),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not is_conditional_check_failure(error):
                raise
            old = error.response.get("Item")
            return Refused(RedriveJob.from_item(old) if old else None)
        return RedriveJob.from_item(response["Attributes"])


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
        for attempt in range(1, HANDOVER_ATTEMPTS + 1):
            try:
                self._start_async(run.job_id)
            except Exception as error:
                logger.warning(
                    "redrive hand-over start failed",
                    extra=fields(REDRIVE_JOB_ID=run.job_id, ATTEMPTS=attempt, REASON=repr(error)),
                )
                if attempt == HANDOVER_ATTEMPTS:
                    logger.error(
                        "redrive job left RUNNING without a runner: its successor could not be started; "
                        "cancel it or start a new job",
                        extra=fields(REDRIVE_JOB_ID=run.job_id, COUNTERS=run.totals.as_dict()),
                    )
                    raise JobHandoverFailed(run.job_id) from error
                continue
            break
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
