"""Answers to "why is this job (or chain) not running?"."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from queuert.control_records import WorkerRecord
from queuert.errors import JobNotFoundError
from queuert.operations import check_id
from queuert.records import JobRecord, JobStatus

if TYPE_CHECKING:
    from queuert.client import Queuert

WORKER_SEEN_S = 60.0
"""A worker recorded within this many seconds counts as alive for explanations."""


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a job is where it is. ``reason`` is one of ``completed``, ``failed``,
    ``cancelled``, ``blocked``, ``external``, ``scheduled``, ``waiting``,
    ``no_worker``, ``running``, ``lease_expired``; ``summary`` says it in one
    sentence; ``details`` holds the facts it rests on (JSON-friendly values)."""

    job_id: str
    chain_id: str
    queue: str
    status: JobStatus
    reason: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "chain_id": self.chain_id,
            "queue": self.queue,
            "status": self.status.value,
            "reason": self.reason,
            "summary": self.summary,
            "details": self.details,
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


async def explain(app: Queuert[Any], job_or_chain_id: str, tx: Any) -> Explanation:
    """Explain the job with this id, or the current job of the chain with this id.
    Raises :class:`~queuert.errors.JobNotFoundError` when neither exists."""
    check_id(job_or_chain_id)
    chain = await app.state.get_chain(tx=tx, chain_id=job_or_chain_id)
    job_id = chain.last_job_id if chain is not None else job_or_chain_id
    position = await app.state.queue_position(tx=tx, job_id=job_id)
    if position is None:
        raise JobNotFoundError(f"no job or chain has id {job_or_chain_id!r}")
    job, now = position.job, position.now
    workers = await app.state.list_workers(tx=tx)
    return _explain(app, job, now, position.ahead, workers)


def _explain(
    app: Queuert[Any],
    job: JobRecord,
    now: datetime,
    ahead: int,
    workers: list[WorkerRecord],
) -> Explanation:
    def answer(reason: str, summary: str, **details: Any) -> Explanation:
        return Explanation(job.id, job.chain_id, job.queue, job.status, reason, summary, details)

    error = None if job.error is None else f"{job.error.type}: {job.error.message}"
    if job.status is JobStatus.COMPLETED:
        if job.next_job_id is not None:
            return answer(
                "completed",
                f"job completed and continued its chain with job {job.next_job_id}",
                next_job_id=job.next_job_id,
            )
        return answer("completed", "completed: the chain ended with an output")
    if job.status is JobStatus.FAILED:
        return answer(
            "failed",
            f"failed after attempt {job.attempt}: {error}; retry it with `retry`",
            error=error,
            attempt=job.attempt,
        )
    if job.status is JobStatus.CANCELLED:
        return answer("cancelled", "cancelled; retry it with `retry` to resume", error=error)
    if job.status is JobStatus.BLOCKED:
        return answer("blocked", "blocked: waiting for other chains to complete")
    queue_def = app.queues.get(job.queue)
    if queue_def is not None and queue_def.external:
        return answer(
            "external",
            f"queue {job.queue!r} is external: it waits for the application to complete it",
        )
    if job.status is JobStatus.RUNNING:
        until = job.leased_until
        if until is not None and until < now:
            return answer(
                "lease_expired",
                f"leased by {job.leased_by} until {_iso(until)}; that lease expired and the "
                "job awaits the reaper of a running worker",
                leased_by=job.leased_by,
                leased_until=_iso(until),
            )
        return answer(
            "running",
            f"running attempt {job.attempt} on worker {job.leased_by} (lease until {_iso(until)})",
            leased_by=job.leased_by,
            leased_until=_iso(until),
            attempt=job.attempt,
        )
    # pending
    if job.scheduled_at > now:
        wait = (job.scheduled_at - now).total_seconds()
        return answer(
            "scheduled",
            f"scheduled for {_iso(job.scheduled_at)} ({wait:.1f}s from now)"
            + (f"; the last attempt failed with {error}" if error else ""),
            scheduled_at=_iso(job.scheduled_at),
            error=error,
        )
    serving = [
        w
        for w in workers
        if job.queue in w.queues and (now - w.last_seen_at).total_seconds() <= WORKER_SEEN_S
    ]
    if not serving:
        return answer(
            "no_worker",
            f"due, but no worker seen handling queue {job.queue!r} in the last "
            f"{WORKER_SEEN_S:.0f} seconds",
            seen_within_s=WORKER_SEEN_S,
        )
    return answer(
        "waiting",
        f"due; waiting for a free worker slot behind {ahead} earlier job(s) of its queue "
        f"({len(serving)} worker(s) serve it)",
        ahead=ahead,
        workers=[w.id for w in serving],
    )
