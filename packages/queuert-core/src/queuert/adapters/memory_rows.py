"""The rows of the in-memory state adapter: one stored job (:class:`_Row`), the
jobs of a chain (:class:`_Chain`), the records made from them on the way out,
and the sorted-key helpers behind keyset pagination.

Rows are mutable and belong to the store in
:mod:`queuert.adapters.memory_store`; every change goes through the store's
undo log, which keeps :meth:`_Row.snapshot` values to restore.
"""

from __future__ import annotations

import dataclasses
import operator
import time
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from datetime import UTC, datetime

from queuert.adapter_support import job_record
from queuert.errors import ValidationError
from queuert.records import ChainRecord, JobError, JobRecord, JobStatus, NewJob

_PENDING = JobStatus.PENDING
_RUNNING = JobStatus.RUNNING
_BLOCKED = JobStatus.BLOCKED
_COMPLETED = JobStatus.COMPLETED
_FAILED = JobStatus.FAILED
_CANCELLED = JobStatus.CANCELLED


class _Row:
    """One stored job. Mutable; :class:`JobRecord` snapshots are made on the way out."""

    __slots__ = (
        "attempt",
        "cached",
        "chain_id",
        "chain_name",
        "completed_at",
        "concurrency_key",
        "created_at",
        "error",
        "has_blockers",
        "id",
        "input",
        "leased_by",
        "leased_until",
        "max_attempts",
        "next_job_id",
        "output",
        "position",
        "priority",
        "queue",
        "scheduled_at",
        "status",
        "trace_context",
        "updated_at",
    )

    def __init__(self, job: NewJob, scheduled_at: datetime, now: datetime) -> None:
        self.id = job.id
        self.chain_id = job.chain_id
        self.chain_name = job.chain_name
        self.queue = job.queue
        self.position = job.position
        self.status = _PENDING
        self.input = job.input
        self.attempt = 0
        self.max_attempts = job.max_attempts
        self.priority = job.priority
        self.scheduled_at = scheduled_at
        self.created_at = now
        self.updated_at = now
        self.leased_by: str | None = None
        self.leased_until: datetime | None = None
        self.output: str | None = None
        self.error: JobError | None = None
        self.next_job_id: str | None = None
        self.completed_at: datetime | None = None
        self.trace_context = job.trace_context
        self.concurrency_key = job.concurrency_key
        self.has_blockers = False
        # The record of the current values; every change goes through _touch, which drops it.
        self.cached: JobRecord | None = None

    # Records read from a row never name unblocked queues (see _complete_job).
    unblocked_queues: tuple[str, ...] = ()

    def snapshot(self) -> _Snapshot:
        return (
            self.status,
            self.attempt,
            self.scheduled_at,
            self.updated_at,
            self.leased_by,
            self.leased_until,
            self.output,
            self.error,
            self.next_job_id,
            self.completed_at,
        )

    def restore(self, snapshot: _Snapshot) -> None:
        self.cached = None
        (
            self.status,
            self.attempt,
            self.scheduled_at,
            self.updated_at,
            self.leased_by,
            self.leased_until,
            self.output,
            self.error,
            self.next_job_id,
            self.completed_at,
        ) = snapshot

    def record(self) -> JobRecord:
        cached = self.cached
        if cached is None:
            cached = self.cached = _build_record(self)
        return cached


_row_values = operator.attrgetter(*(field.name for field in dataclasses.fields(JobRecord)))


def _build_record(row: _Row) -> JobRecord:
    return job_record(*_row_values(row))


_Snapshot = tuple[
    JobStatus,
    int,
    datetime,
    datetime,
    str | None,
    datetime | None,
    str | None,
    JobError | None,
    str | None,
    datetime | None,
]


class _Chain:
    """The jobs of one chain by position."""

    __slots__ = ("rows",)

    def __init__(self) -> None:
        self.rows: dict[int, _Row] = {}

    def first(self) -> _Row:
        row = self.rows.get(0)
        return row if row is not None else self.rows[min(self.rows)]

    def last(self) -> _Row:
        return self.rows[max(self.rows)]


def _system_clock() -> datetime:
    return datetime.fromtimestamp(time.time(), UTC)


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{name} must be timezone-aware, got {value!r}")
    return value.astimezone(UTC)


def _chain_record(chain_id: str, chain: _Chain, dedup_key: str | None = None) -> ChainRecord:
    first = chain.first()
    last = chain.last()
    return ChainRecord(
        id=chain_id,
        chain_name=first.chain_name,
        status=last.status,
        input=first.input,
        output=last.output,
        error=last.error,
        last_job_id=last.id,
        last_queue=last.queue,
        created_at=first.created_at,
        updated_at=last.updated_at,
        completed_at=last.completed_at,
        dedup_key=dedup_key,
    )


def _insort_unique(keys: list[str], key: str) -> None:
    if not keys or keys[-1] < key:
        keys.append(key)  # ids are time ordered: the common case is an append
    else:
        insort(keys, key)


def _remove_sorted(keys: list[str], key: str) -> None:
    index = bisect_left(keys, key)
    if index < len(keys) and keys[index] == key:
        del keys[index]


def _keys_after(keys: list[str], after: str | None) -> Iterator[str]:
    # Statements run without awaiting, so the list cannot change while this iterates.
    for index in range(0 if after is None else bisect_right(keys, after), len(keys)):
        yield keys[index]
