"""The redrive_jobs table (PK jobId): typed job records and the conditional writes that change them.

One runner at a time: an invocation runs a job only after taking its lease (runner id, leaseUntil
= its own deadline) with a conditional write (acquire), and every later write of that runner is
conditioned on still holding it (checkpoint, release, finish). DynamoDB applies each conditional
write atomically (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/
WorkingWithItems.html#WorkingWithItems.ConditionalUpdate), so two invocations handed one job id
cannot both hold it. A refused write answers the job as it was (ReturnValuesOnConditionCheckFailure).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

from functions.common.names import REDRIVE_JOBS_PARTITION_KEY, REDRIVE_JOBS_TTL_ATTRIBUTE
from functions.common.state_table import is_conditional_check_failure, iso, plain_item
from functions.redrive.mover import Counters
from functions.redrive.params import RedriveParams

_SERIALIZER = TypeSerializer()


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


class JobNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Refused:
    """A conditional job write that did not hold; the job as it was (None: there is no such job)."""

    current: RedriveJob | None


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
