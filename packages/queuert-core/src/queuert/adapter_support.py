"""Rules of the storage port that every state adapter applies the same way, for
adapter implementations: what a job looks like right after it is created, and
how a listing page tells whether more may follow."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from queuert.records import ChainRecord, JobRecord, JobStatus, NewJob, Page

R = TypeVar("R", JobRecord, ChainRecord)


def created_record(job: NewJob, *, scheduled_at: datetime, created_at: datetime) -> JobRecord:
    """The record of ``job`` as :meth:`~queuert.ports.state.StateAdapter.create_jobs`
    returns it: ``pending``, no attempt made yet, ``updated_at`` equal to
    ``created_at``, no lease, output or error."""
    return JobRecord(
        id=job.id,
        chain_id=job.chain_id,
        chain_name=job.chain_name,
        queue=job.queue,
        position=job.position,
        status=JobStatus.PENDING,
        input=job.input,
        attempt=0,
        max_attempts=job.max_attempts,
        priority=job.priority,
        scheduled_at=scheduled_at,
        created_at=created_at,
        updated_at=created_at,
    )


def keyset_page(items: list[R], limit: int) -> Page[R]:
    """A page of ``items`` read with ``limit``: ``next_cursor`` is the id of the
    last item when the page is full (more may follow), ``None`` otherwise."""
    return Page(items=items, next_cursor=items[-1].id if items and len(items) == limit else None)
