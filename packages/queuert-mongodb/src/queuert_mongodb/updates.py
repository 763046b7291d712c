"""Update pipelines that change jobs, and the upsert that inserts one.

Times are computed by the server (``$$NOW``), never sent by the client, except
an absolute ``scheduled_at`` the caller gave. In a pipeline a string starting
with ``$`` would be read as a field path, so every value a caller gave is
wrapped in ``$literal``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from queuert.records import LEASE_EXPIRED_ERROR, JobError, JobStatus, NewJob
from queuert_mongodb.documents import error_document

Pipeline = list[dict[str, Any]]

NOW = "$$NOW"

INSERT_MARKER = "_inserting"
"""Field of the upsert filter that no stored job has, so the upsert inserts or fails
on the duplicate ``_id`` but never updates an existing job; the pipeline removes it."""

LOCK_UPDATE: dict[str, Any] = {"$inc": {"lock": 1}}
"""A real write to the job: inside a transaction it holds the document's write lock
until the transaction ends, so a concurrent writer waits or conflicts."""

_CLEAR_LEASE = {"leased_by": None, "leased_until": None}


def literal(value: Any) -> dict[str, Any]:
    return {"$literal": value}


def after_ms(ms: int) -> Any:
    """The server's now plus ``ms`` milliseconds."""
    return NOW if ms == 0 else {"$add": [NOW, ms]}


def scheduled(at: datetime | None, delay_ms: int) -> Any:
    """``at`` when given, else the server's now plus ``delay_ms``."""
    return literal(at) if at is not None else after_ms(delay_ms)


def insert_filter(job_id: str) -> dict[str, Any]:
    """Filter of the upsert inserting job ``job_id``: matches no stored document."""
    return {"_id": job_id, INSERT_MARKER: True}


def insert_pipeline(job: NewJob, extra: dict[str, Any] | None = None) -> Pipeline:
    """The pipeline that turns the upserted ``{_id, marker}`` into a ``pending`` job
    created at the server's now; ``extra`` holds further fields as expressions
    (:func:`literal` values, or expressions that override the defaults, such as a
    waiting job's status)."""
    return [
        {
            "$set": {
                "chain_id": literal(job.chain_id),
                "chain_name": literal(job.chain_name),
                "queue": literal(job.queue),
                "position": literal(job.position),
                "status": literal(JobStatus.PENDING.value),
                "input": literal(job.input),
                "attempt": literal(0),
                "max_attempts": literal(job.max_attempts),
                "priority": literal(job.priority),
                "scheduled_at": scheduled(job.scheduled_at, job.delay_ms),
                "created_at": NOW,
                "updated_at": NOW,
                **_CLEAR_LEASE,
                "output": None,
                "error": None,
                "next_job_id": None,
                "completed_at": None,
                "claim": None,
                "lock": literal(0),
                "trace_context": literal(job.trace_context),
                "concurrency_key": literal(job.concurrency_key),
                **(extra or {}),
            }
        },
        {"$unset": [INSERT_MARKER]},
    ]


def acquire_update(*, owner: str, lease_ms: int, token: str) -> Pipeline:
    return [
        {
            "$set": {
                "status": literal(JobStatus.RUNNING.value),
                "attempt": {"$add": ["$attempt", 1]},
                "leased_by": literal(owner),
                "leased_until": after_ms(lease_ms),
                "updated_at": NOW,
                "claim": literal(token),
            }
        }
    ]


def renew_update(lease_ms: int) -> Pipeline:
    return [{"$set": {"leased_until": after_ms(lease_ms), "updated_at": NOW}}]


def complete_update(output: str) -> Pipeline:
    return [
        {
            "$set": {
                "status": literal(JobStatus.COMPLETED.value),
                "output": literal(output),
                **_CLEAR_LEASE,
                "completed_at": NOW,
                "updated_at": NOW,
            }
        }
    ]


def continued_update(next_job_id: str) -> Pipeline:
    return [
        {
            "$set": {
                "status": literal(JobStatus.COMPLETED.value),
                "next_job_id": literal(next_job_id),
                **_CLEAR_LEASE,
                "completed_at": NOW,
                "updated_at": NOW,
            }
        }
    ]


def reschedule_update(
    *,
    error: JobError | None,
    delay_ms: int,
    scheduled_at: datetime | None,
    refund_attempt: bool,
) -> Pipeline:
    fields: dict[str, Any] = {
        "status": literal(JobStatus.PENDING.value),
        "scheduled_at": scheduled(scheduled_at, delay_ms),
        "error": literal(error_document(error)),
        **_CLEAR_LEASE,
        "updated_at": NOW,
    }
    if refund_attempt:
        fields["attempt"] = {"$subtract": ["$attempt", 1]}
    return [{"$set": fields}]


def fail_update(error: JobError) -> Pipeline:
    return [
        {
            "$set": {
                "status": literal(JobStatus.FAILED.value),
                "error": literal(error_document(error)),
                **_CLEAR_LEASE,
                "completed_at": NOW,
                "updated_at": NOW,
            }
        }
    ]


def reap_update(token: str) -> Pipeline:
    """Back to ``pending`` (due now) with the lease-expired error, or ``failed`` when
    the attempts are exhausted."""
    exhausted = {"$gte": ["$attempt", "$max_attempts"]}
    return [
        {
            "$set": {
                "status": {
                    "$cond": [
                        exhausted,
                        literal(JobStatus.FAILED.value),
                        literal(JobStatus.PENDING.value),
                    ]
                },
                "scheduled_at": {"$cond": [exhausted, "$scheduled_at", NOW]},
                "completed_at": {"$cond": [exhausted, NOW, None]},
                "error": literal(error_document(LEASE_EXPIRED_ERROR)),
                **_CLEAR_LEASE,
                "updated_at": NOW,
                "claim": literal(token),
            }
        }
    ]


def cancel_update() -> Pipeline:
    return [
        {
            "$set": {
                "status": literal(JobStatus.CANCELLED.value),
                "completed_at": NOW,
                "updated_at": NOW,
            }
        }
    ]
