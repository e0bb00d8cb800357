"""Redrive jobs: the jobs table (PK jobId) and the job loop run by the asynchronous self-invocation.

Job statuses: PENDING -> RUNNING -> SUCCEEDED | CANCELLED | FAILED; CANCEL_REQUESTED is set by
POST /redrive/cancel and honoured before the next batch. A job that nears its invocation's
timeout hands over to a fresh invocation (same job id), so a long paced redrive is not bounded by
one Lambda timeout nor by the API's 30-second integration timeout.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
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
# Hand over to a new invocation when less than this is left (one paced batch fits comfortably).
HANDOVER_MARGIN_MS = 20_000
# Receives in a row that bring no message this job has not seen: the DLQ has nothing more for it.
MAX_EMPTY_ROUNDS = 3


class JobStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    CANCEL_REQUESTED = "CANCEL_REQUESTED"
    CANCELLED = "CANCELLED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


TERMINAL = {JobStatus.CANCELLED, JobStatus.SUCCEEDED, JobStatus.FAILED}


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
    finished_at: str | None = None
    error: str | None = None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> RedriveJob:
        """From a low-level DynamoDB item (attribute-value form)."""
        plain = plain_item(item)
        return cls(
            job_id=str(plain[REDRIVE_JOBS_PARTITION_KEY]),
            status=JobStatus(plain["status"]),
            params=RedriveParams.from_item(plain["params"]),
            counters=Counters.from_dict(plain.get("counters")),
            created_at=str(plain.get("createdAt", "")),
            updated_at=str(plain.get("updatedAt", "")),
            expires_at=int(plain.get(REDRIVE_JOBS_TTL_ATTRIBUTE, 0)),
            finished_at=plain.get("finishedAt"),
            error=plain.get("error"),
        )

    def to_response(self) -> dict[str, Any]:
        """The job as GET /redrive/status and the job run answer it."""
        response: dict[str, Any] = {
            "jobId": self.job_id,
            "status": self.status.value,
            "params": self.params.to_item(),
            "counters": self.counters.as_dict(),
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            REDRIVE_JOBS_TTL_ATTRIBUTE: self.expires_at,
        }
        for name, value in (("finishedAt", self.finished_at), ("error", self.error)):
            if value is not None:
                response[name] = value
        return response


class JobNotFound(LookupError):
    pass


class JobConflict(RuntimeError):
    def __init__(self, job: RedriveJob) -> None:
        super().__init__(f"job {job.job_id} is {job.status.value}")
        self.job = job


class JobStartFailed(RuntimeError):
    pass


def _values(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _SERIALIZER.serialize(value) for name, value in values.items()}


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

    def transition(
        self, job_id: str, to: JobStatus, *, allowed_from: set[JobStatus], extra: dict[str, Any] | None = None
    ) -> RedriveJob | None:
        """Conditional status change; None when the job was not in an allowed status."""
        values = {"to": to.value, "now": iso(self._clock()), **(extra or {})}
        # Every caller-supplied attribute goes through a #name placeholder: some are DynamoDB
        # reserved words (error), which a bare name in the expression turns into a ValidationException.
        names = {"#status": "status", **{f"#{name}": name for name in extra or {}}}
        sets = ["#status = :to", "updatedAt = :now", *(f"#{name} = :{name}" for name in extra or {})]
        allowed = {f":from{index}": status.value for index, status in enumerate(sorted(allowed_from))}
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=self._key(job_id),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=f"#status IN ({', '.join(allowed)})",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_values(
                    {f":{name}": value for name, value in values.items()} | allowed
                ),
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if is_conditional_check_failure(error):
                return None
            raise
        return RedriveJob.from_item(response["Attributes"])

    def save_progress(self, job_id: str, counters: Counters) -> None:
        self._client.update_item(
            TableName=self._table,
            Key=self._key(job_id),
            UpdateExpression="SET counters = :counters, updatedAt = :now",
            ExpressionAttributeValues=_values({":counters": counters.as_dict(), ":now": iso(self._clock())}),
        )


class RedriveJobs:
    def __init__(
        self,
        *,
        store: JobStore,
        mover: DlqMover,
        start_async: Callable[[str], None],
        pacer_factory: Callable[[], Pacer],
    ) -> None:
        self._store = store
        self._mover = mover
        self._start_async = start_async
        self._pacer_factory = pacer_factory

    def start(self, params: RedriveParams) -> RedriveJob:
        job = self._store.create(params)
        try:
            self._start_async(job.job_id)
        except Exception as error:
            self._store.transition(
                job.job_id,
                JobStatus.FAILED,
                allowed_from={JobStatus.PENDING},
                extra={"error": f"not started: {error}"},
            )
            raise JobStartFailed(str(error)) from error
        logger.info("redrive job started", extra=fields(REDRIVE_JOB_ID=job.job_id, PARAMS=params.to_item()))
        return job

    def status(self, job_id: str) -> RedriveJob:
        return self._store.get(job_id)

    def cancel(self, job_id: str) -> RedriveJob:
        job = self._store.transition(
            job_id, JobStatus.CANCEL_REQUESTED, allowed_from={JobStatus.PENDING, JobStatus.RUNNING}
        )
        if job is not None:
            return job
        current = self._store.get(job_id)
        if current.status is JobStatus.CANCEL_REQUESTED:
            return current
        raise JobConflict(current)

    def run(self, job_id: str, remaining_ms: Callable[[], int]) -> RedriveJob:
        """The job loop of one invocation: batches until done, cancelled, failed or handed over."""
        job = self._store.transition(job_id, JobStatus.RUNNING, allowed_from={JobStatus.PENDING})
        if job is None:
            job = self._store.get(job_id)
            if job.status is JobStatus.CANCEL_REQUESTED:
                return self._finish(job_id, JobStatus.CANCELLED, job.counters)
            if job.status is not JobStatus.RUNNING:
                logger.info(
                    "redrive job not runnable", extra=fields(REDRIVE_JOB_ID=job_id, JOB_STATUS=job.status)
                )
                return job
        totals = job.counters
        try:
            return self._loop(job_id, job.params, totals, remaining_ms)
        except Exception as error:
            logger.exception("redrive job failed", extra=fields(REDRIVE_JOB_ID=job_id))
            return self._finish(job_id, JobStatus.FAILED, totals, error=repr(error))

    def _loop(
        self, job_id: str, params: RedriveParams, totals: Counters, remaining_ms: Callable[[], int]
    ) -> RedriveJob:
        pacer = self._pacer_factory()
        seen: set[str] = set()
        empty_rounds = 0
        batches = 0
        # A short function timeout must not turn into an endless chain of hand-overs: the margin
        # shrinks to a third of this invocation's time, and every invocation moves a batch first.
        margin_ms = min(HANDOVER_MARGIN_MS, remaining_ms() // 3)
        while True:
            if self._store.get(job_id).status is JobStatus.CANCEL_REQUESTED:
                return self._finish(job_id, JobStatus.CANCELLED, totals)
            budget = params.max_messages - totals.moved - totals.quarantined
            if budget <= 0 or empty_rounds >= MAX_EMPTY_ROUNDS:
                return self._finish(job_id, JobStatus.SUCCEEDED, totals)
            if batches and remaining_ms() < margin_ms:
                self._store.save_progress(job_id, totals)
                self._start_async(job_id)
                logger.info(
                    "redrive job handed over", extra=fields(REDRIVE_JOB_ID=job_id, COUNTERS=totals.as_dict())
                )
                return self._store.get(job_id)
            messages = self._mover.receive(min(budget, pacer.batch_size))
            if not messages:
                return self._finish(job_id, JobStatus.SUCCEEDED, totals)
            outcome = self._mover.move(messages, params, job_id=job_id, seen=seen, pacer=pacer)
            batches += 1
            empty_rounds = 0 if outcome.new_messages else empty_rounds + 1
            totals.add(outcome.counters)
            self._store.save_progress(job_id, totals)

    def _finish(
        self, job_id: str, status: JobStatus, totals: Counters, *, error: str | None = None
    ) -> RedriveJob:
        extra: dict[str, Any] = {"counters": totals.as_dict(), "finishedAt": iso(time.time())}
        if error:
            extra["error"] = error
        job = self._store.transition(
            job_id,
            status,
            allowed_from={JobStatus.PENDING, JobStatus.RUNNING, JobStatus.CANCEL_REQUESTED},
            extra=extra,
        )
        if job is None:
            # Already terminal (a concurrent invocation finished it): report what is stored.
            job = self._store.get(job_id)
        logger.info(
            "redrive job finished",
            extra=fields(REDRIVE_JOB_ID=job_id, JOB_STATUS=job.status, COUNTERS=totals.as_dict()),
        )
        return job
