"""Rules of the storage port that every state adapter applies the same way, for
adapter implementations: what a job looks like right after it is created, and
how a listing page tells whether more may follow."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TypeVar, overload

from queuert.records import ChainRecord, JobRecord, JobStatus, NewJob, Page
from queuert.slots import positional_builder

R = TypeVar("R", JobRecord, ChainRecord)


job_record: Callable[..., JobRecord] = positional_builder(JobRecord)
"""``JobRecord`` from its fields given by position, in declaration order (id,
chain_id, chain_name, queue, position, status, input, attempt, max_attempts,
priority, scheduled_at, created_at, updated_at, leased_by, leased_until, output,
error, next_job_id, completed_at[, trace_context[, has_blockers]]): the record adapters
build from rows."""


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
        trace_context=job.trace_context,
    )


class CreatedRecords(Sequence[JobRecord]):
    """What :meth:`~queuert.ports.state.StateAdapter.create_jobs` returns for ``jobs``
    written at ``created_at``: the record of each as :func:`created_record` makes it,
    with ``scheduled_at(job)``. The records are built when first read: a client
    starting chains reads none of them."""

    __slots__ = ("_created_at", "_jobs", "_records", "_scheduled_at")

    def __init__(
        self,
        jobs: Sequence[NewJob],
        *,
        created_at: datetime,
        scheduled_at: Callable[[NewJob], datetime],
    ) -> None:
        self._jobs = list(jobs)
        self._created_at = created_at
        self._scheduled_at = scheduled_at
        self._records: list[JobRecord] | None = None

    def _built(self) -> list[JobRecord]:
        if self._records is None:
            self._records = [
                created_record(j, scheduled_at=self._scheduled_at(j), created_at=self._created_at)
                for j in self._jobs
            ]
        return self._records

    def __len__(self) -> int:
        return len(self._jobs)

    @overload
    def __getitem__(self, index: int) -> JobRecord: ...
    @overload
    def __getitem__(self, index: slice) -> list[JobRecord]: ...
    def __getitem__(self, index: int | slice) -> JobRecord | list[JobRecord]:
        return self._built()[index]

    def __iter__(self) -> Iterator[JobRecord]:
        return iter(self._built())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return self._built() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._built())


def keyset_page(items: list[R], limit: int) -> Page[R]:
    """A page of ``items`` read with ``limit``: ``next_cursor`` is the id of the
    last item when the page is full (more may follow), ``None`` otherwise."""
    return Page(items=items, next_cursor=items[-1].id if items and len(items) == limit else None)
