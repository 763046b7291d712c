"""The in-memory state adapter: the reference implementation of the storage port.

Everything lives in this process's memory and disappears with it. Transactions
are real: each keeps an undo log, so a rollback restores the store exactly, and
savepoints are marks in that log. One :class:`asyncio.Lock` serialises
transactions, so a transaction holds every row it touches until it ends
(``row_locks``) and no two are open at once (``concurrent_transactions`` is
false). Operations called with ``tx=None`` open, and commit, a transaction of
their own; calling one while the same task holds a transaction would wait for
itself, so it raises :class:`~queuert.errors.AdapterError` instead.

Pending jobs are indexed per queue by ``(scheduled_at, -priority, id)`` and
running jobs by lease expiry, so acquiring ``k`` jobs and reaping ``k`` leases
cost ``O(k log n)``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import operator
import time
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Concatenate, ParamSpec, TypeVar
from urllib.parse import urlsplit

from queuert.adapter_support import CreatedRecords, job_record, keyset_page
from queuert.adapters import memory_control, memory_rates
from queuert.adapters.memory_blockers import MemoryBlockers
from queuert.adapters.memory_dedup import MemoryDedup
from queuert.adapters.memory_limits import acquire_limited
from queuert.adapters.memory_rates import MemoryRateWindows
from queuert.control_records import (
    QueueCounts,
    QueuePosition,
    RevokedChain,
    SettledJob,
    WorkerInfo,
    WorkerRecord,
)
from queuert.errors import (
    AdapterError,
    ConfigurationError,
    InvalidTransactionError,
    LeaseLostError,
    SchemaNotMigratedError,
    TransactionClosedError,
    ValidationError,
)
from queuert.ports.state import StateAdapter, StateCapabilities, describe_transaction
from queuert.rate_records import RateAcquisition
from queuert.records import (
    LEASE_EXPIRED_ERROR,
    BlockerRecord,
    ChainFilter,
    ChainRecord,
    DedupKey,
    JobError,
    JobFilter,
    JobRecord,
    JobStatus,
    Lease,
    NewJob,
    Page,
    ScheduleSlot,
)

__all__ = ["MemoryStateAdapter", "MemoryTransaction", "from_url"]

P = ParamSpec("P")
R = TypeVar("R")

_PENDING = JobStatus.PENDING
_RUNNING = JobStatus.RUNNING
_BLOCKED = JobStatus.BLOCKED
_COMPLETED = JobStatus.COMPLETED
_FAILED = JobStatus.FAILED
_CANCELLED = JobStatus.CANCELLED

_NOT_MIGRATED = "the in-memory store is not migrated: run `await adapter.migrate()` before using it"


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

# Undo log entries: (_INSERTED, row, None) | (_UPDATED, row, snapshot) |
# (_DELETED, row, None) | (_CALLBACK, callback, None).
_INSERTED = 0
_UPDATED = 1
_DELETED = 2
_CALLBACK = 3
_UndoEntry = tuple[int, object, object]


class MemoryTransaction:
    """A transaction of :class:`MemoryStateAdapter`: the ``Tx`` the adapter's
    operations take. Usable only while its ``async with`` block runs; an
    operation given a transaction that has ended raises
    :class:`~queuert.errors.AdapterError`."""

    __slots__ = ("_adapter", "_open", "_undo")

    def __init__(self, adapter: MemoryStateAdapter) -> None:
        self._adapter = adapter
        self._undo: list[_UndoEntry] = []
        self._open = True

    @property
    def is_open(self) -> bool:
        """Whether the transaction is still running."""
        return self._open

    def on_rollback(self, undo: Callable[[], None]) -> None:
        """Register ``undo`` to run if this transaction (or the savepoint open at
        the time of the call) rolls back: the way an application makes its own
        in-memory writes part of the transaction. Undo actions run newest first."""
        self._require_open()
        self._undo.append((_CALLBACK, undo, None))

    def _require_open(self) -> None:
        if not self._open:
            raise AdapterError("the in-memory transaction has already ended")

    def _rollback_to(self, mark: int) -> None:
        undo = self._undo
        adapter = self._adapter
        failure: Exception | None = None
        while len(undo) > mark:
            kind, target, data = undo.pop()
            if kind == _UPDATED:
                assert isinstance(target, _Row)
                target.restore(data)  # type: ignore[arg-type]
                adapter._index(target)
            elif kind == _INSERTED:
                assert isinstance(target, _Row)
                adapter._unlink(target)
            elif kind == _DELETED:
                assert isinstance(target, _Row)
                adapter._link(target)
            else:
                # An application's undo action that fails must not stop the store's.
                try:
                    target()  # type: ignore[operator]
                except Exception as error:
                    failure = error if failure is None else failure
        if failure is not None:
            raise failure


class _TransactionContext:
    """``async with adapter.transaction() as tx``: holds the store's lock for the block."""

    __slots__ = ("_adapter", "_tx")

    def __init__(self, adapter: MemoryStateAdapter) -> None:
        self._adapter = adapter
        self._tx: MemoryTransaction | None = None

    async def __aenter__(self) -> MemoryTransaction:
        self._tx = await self._adapter._begin()
        return self._tx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tx is not None
        self._adapter._end(self._tx, rollback=exc_type is not None)


class _SavepointContext:
    """``async with adapter.savepoint(tx=tx)``: a mark in the transaction's undo log."""

    __slots__ = ("_mark", "_tx")

    def __init__(self, tx: MemoryTransaction) -> None:
        self._tx = tx
        self._mark = 0

    async def __aenter__(self) -> MemoryTransaction:
        self._tx._require_open()
        self._mark = len(self._tx._undo)
        return self._tx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None and self._tx._open:
            self._tx._rollback_to(self._mark)


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


class MemoryStateAdapter(StateAdapter[MemoryTransaction]):
    """A state adapter that keeps jobs in this process's memory.

    ``clock`` replaces the store's clock (a callable returning timezone-aware
    UTC datetimes), so tests can move time; it is read through :meth:`now`.
    The store starts unmigrated like a fresh database: every operation raises
    :class:`~queuert.errors.SchemaNotMigratedError` until :meth:`migrate` ran.
    """

    capabilities = StateCapabilities(
        row_locks=True,
        concurrent_transactions=False,
        savepoints=True,
        clock_precision_ms=0.001,
        native_notify=False,
        multi_process=False,
        blockers=True,
        deduplication=True,
        concurrency_limits=True,
        schedules=True,
        rate_limits=True,
    )

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or _system_clock
        self._lock = asyncio.Lock()
        self._holder: asyncio.Task[object] | None = None
        self._migrated = False
        self._jobs: dict[str, _Row] = {}
        self._job_ids: list[str] = []  # sorted: the keyset of list_jobs
        self._chains: dict[str, _Chain] = {}
        self._chain_ids: list[str] = []  # sorted: the keyset of list_chains
        # Lazily cleaned heaps: an entry is live while its row still matches it.
        self._pending: dict[str, list[tuple[datetime, int, str]]] = {}
        self._leases: list[tuple[datetime, str]] = []
        # Lazily cleaned too: ids of each queue's running jobs, for limited acquisition.
        self._running: dict[str, set[str]] = {}
        self._stale_pushes = 0
        self._workers: dict[str, WorkerRecord] = {}
        self._blockers = MemoryBlockers()
        self._dedup = MemoryDedup()
        self._rate_windows = MemoryRateWindows()

    def now(self) -> datetime:
        """The store's clock: the time every timestamp and eligibility check uses."""
        return self._clock()

    # -- transactions -----------------------------------------------------

    def transaction(self) -> AbstractAsyncContextManager[MemoryTransaction]:
        """Open a transaction; it holds the store's lock until the block ends, then
        commits (normal exit) or restores every write it made (exception)."""
        return _TransactionContext(self)

    def savepoint(self, *, tx: MemoryTransaction) -> AbstractAsyncContextManager[MemoryTransaction]:
        """Open a savepoint in ``tx``: an exception in the block undoes only the
        writes made inside it, then propagates."""
        self._own(tx)
        return _SavepointContext(tx)

    # -- schema ------------------------------------------------------------

    async def migrate(self) -> None:
        """Mark the store migrated. Idempotent; keeps the data."""
        self._migrated = True

    async def check_schema(self) -> None:
        """Raise :class:`~queuert.errors.SchemaNotMigratedError` until :meth:`migrate` ran."""
        if not self._migrated:
            raise SchemaNotMigratedError(_NOT_MIGRATED)

    async def close(self) -> None:
        """Nothing to release; the data stays readable. Idempotent."""

    # -- writing jobs -------------------------------------------------------

    async def create_jobs(
        self, *, tx: MemoryTransaction | None, jobs: Sequence[NewJob]
    ) -> Sequence[JobRecord]:
        return await self._run(tx, self._create_jobs, jobs)

    async def acquire_jobs(
        self,
        *,
        tx: MemoryTransaction | None,
        queues: Sequence[str],
        limit: int,
        owner: str,
        lease_ms: int,
    ) -> list[JobRecord]:
        return await self._run(tx, self._acquire_jobs, queues, limit, owner, lease_ms)

    async def renew_lease(
        self, *, tx: MemoryTransaction | None, lease: Lease, lease_ms: int
    ) -> datetime:
        return await self._run(tx, self._renew_lease, lease, lease_ms)

    async def lock_job(self, *, tx: MemoryTransaction, lease: Lease) -> JobRecord:
        """Verify the lease. The transaction already holds the whole store, so the
        job stays locked until it ends."""
        given: object = tx
        if not isinstance(given, MemoryTransaction):
            raise AdapterError(f"lock_job needs the caller's transaction, got {given!r}")
        return await self._run(tx, self._lock_job, lease)

    async def complete_job(
        self, *, tx: MemoryTransaction | None, lease: Lease, output: str
    ) -> JobRecord:
        return await self._run(tx, self._complete_job, lease, output)

    async def continue_job(
        self, *, tx: MemoryTransaction | None, lease: Lease, next_job: NewJob
    ) -> JobRecord:
        return await self._run(tx, self._continue_job, lease, next_job)

    async def reschedule_job(
        self,
        *,
        tx: MemoryTransaction | None,
        lease: Lease,
        error: JobError | None,
        delay_ms: int = 0,
        scheduled_at: datetime | None = None,
        refund_attempt: bool = False,
    ) -> JobRecord:
        return await self._run(
            tx, self._reschedule_job, lease, error, delay_ms, scheduled_at, refund_attempt
        )

    async def fail_job(
        self, *, tx: MemoryTransaction | None, lease: Lease, error: JobError
    ) -> JobRecord:
        return await self._run(tx, self._fail_job, lease, error)

    async def reap_expired_leases(
        self, *, tx: MemoryTransaction | None, limit: int
    ) -> list[JobRecord]:
        return await self._run(tx, self._reap_expired_leases, limit)

    async def cancel_chain(
        self, *, tx: MemoryTransaction | None, chain_id: str
    ) -> ChainRecord | None:
        return await self._run(tx, self._cancel_chain, chain_id)

    async def time_until_next_job(
        self, *, tx: MemoryTransaction | None, queues: Sequence[str]
    ) -> float | None:
        return await self._run(tx, self._time_until_next_job, queues)

    # -- reading ---------------------------------------------------------------

    async def get_job(self, *, tx: MemoryTransaction | None, job_id: str) -> JobRecord | None:
        return await self._run(tx, self._get_job, job_id)

    async def list_jobs(
        self,
        *,
        tx: MemoryTransaction | None,
        filter: JobFilter,
        after: str | None,
        limit: int,
    ) -> Page[JobRecord]:
        return await self._run(tx, self._list_jobs, filter, after, limit)

    async def get_chain(self, *, tx: MemoryTransaction | None, chain_id: str) -> ChainRecord | None:
        return await self._run(tx, self._get_chain, chain_id)

    async def list_chains(
        self,
        *,
        tx: MemoryTransaction | None,
        filter: ChainFilter,
        after: str | None,
        limit: int,
    ) -> Page[ChainRecord]:
        return await self._run(tx, self._list_chains, filter, after, limit)

    async def delete_chains(self, *, tx: MemoryTransaction | None, chain_ids: Sequence[str]) -> int:
        return await self._run(tx, self._delete_chains, chain_ids)

    # -- statement machinery ------------------------------------------------

    async def _begin(self) -> MemoryTransaction:
        task = asyncio.current_task()
        if task is not None and self._holder is task:
            raise AdapterError(
                "this task already holds an in-memory transaction; pass it as tx= "
                "instead of opening another (transactions of this adapter serialise)"
            )
        await self._lock.acquire()
        self._holder = task
        return MemoryTransaction(self)

    def _end(self, tx: MemoryTransaction, *, rollback: bool) -> None:
        try:
            if rollback:
                tx._rollback_to(0)
        finally:
            tx._open = False
            tx._undo = []
            self._holder = None
            self._lock.release()

    def _own(self, tx: MemoryTransaction) -> MemoryTransaction:
        if not isinstance(tx, MemoryTransaction) or tx._adapter is not self:
            raise AdapterError(f"{tx!r} is not a transaction of this in-memory store")
        tx._require_open()
        return tx

    async def _run(
        self,
        tx: MemoryTransaction | None,
        statement: Callable[Concatenate[MemoryTransaction, P], R],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        """Run one statement atomically: in ``tx`` (undone alone if it raises, so
        the transaction can go on) or in a transaction of its own."""
        if not self._migrated:
            raise SchemaNotMigratedError(_NOT_MIGRATED)
        if tx is None:
            own = await self._begin()
            try:
                result = statement(own, *args, **kwargs)
            except BaseException:
                self._end(own, rollback=True)
                raise
            self._end(own, rollback=False)
            return result
        self._own(tx)
        mark = len(tx._undo)
        try:
            return statement(tx, *args, **kwargs)
        except BaseException:
            tx._rollback_to(mark)
            raise

    def _insert(self, tx: MemoryTransaction, row: _Row) -> None:
        if row.id in self._jobs:
            raise AdapterError(f"a job with id {row.id!r} already exists")
        chain = self._chains.get(row.chain_id)
        if chain is not None and row.position in chain.rows:
            raise AdapterError(
                f"chain {row.chain_id!r} already has a job at position {row.position}"
            )
        self._link(row)
        tx._undo.append((_INSERTED, row, None))

    def _touch(self, tx: MemoryTransaction, row: _Row) -> None:
        """Record the row's current values in the undo log before changing them."""
        tx._undo.append((_UPDATED, row, row.snapshot()))
        row.cached = None

    def _link(self, row: _Row) -> None:
        self._jobs[row.id] = row
        _insort_unique(self._job_ids, row.id)
        chain = self._chains.get(row.chain_id)
        if chain is None:
            chain = self._chains[row.chain_id] = _Chain()
            _insort_unique(self._chain_ids, row.chain_id)
        chain.rows[row.position] = row
        self._index(row)

    def _unlink(self, row: _Row) -> None:
        # Heap entries of the row go stale and are dropped when they surface.
        del self._jobs[row.id]
        _remove_sorted(self._job_ids, row.id)
        chain = self._chains[row.chain_id]
        del chain.rows[row.position]
        if not chain.rows:
            del self._chains[row.chain_id]
            _remove_sorted(self._chain_ids, row.chain_id)

    def _index(self, row: _Row) -> None:
        """Push the row into the heap its status needs; earlier entries go stale."""
        if row.status is _PENDING:
            heap = self._pending.get(row.queue)
            if heap is None:
                heap = self._pending[row.queue] = []
            heapq.heappush(heap, (row.scheduled_at, -row.priority, row.id))
        elif row.status is _RUNNING and row.leased_until is not None:
            heapq.heappush(self._leases, (row.leased_until, row.id))
            self._running.setdefault(row.queue, set()).add(row.id)
        else:
            return
        self._stale_pushes += 1
        if self._stale_pushes > 1024 + 2 * len(self._jobs):
            self._rebuild_indexes()

    def _rebuild_indexes(self) -> None:
        pending: dict[str, list[tuple[datetime, int, str]]] = {}
        leases: list[tuple[datetime, str]] = []
        running: dict[str, set[str]] = {}
        for row in self._jobs.values():
            if row.status is _PENDING:
                pending.setdefault(row.queue, []).append((row.scheduled_at, -row.priority, row.id))
            elif row.status is _RUNNING and row.leased_until is not None:
                leases.append((row.leased_until, row.id))
                running.setdefault(row.queue, set()).add(row.id)
        for heap in pending.values():
            heapq.heapify(heap)
        heapq.heapify(leases)
        self._pending = pending
        self._leases = leases
        self._running = running
        self._stale_pushes = len(self._jobs)

    def _pending_head(self, queue: str) -> tuple[datetime, int, str] | None:
        """The live head of the queue's pending heap, dropping stale entries."""
        heap = self._pending.get(queue)
        if not heap:
            return None
        jobs = self._jobs
        while heap:
            entry = heap[0]
            row = jobs.get(entry[2])
            if row is not None and row.status is _PENDING and row.scheduled_at == entry[0]:
                return entry
            heapq.heappop(heap)
        return None

    def _guarded(self, lease: Lease) -> _Row:
        row = self._jobs.get(lease.job_id)
        if (
            row is None
            or row.status is not _RUNNING
            or row.leased_by != lease.owner
            or row.attempt != lease.attempt
        ):
            raise LeaseLostError(lease.job_id)
        return row

    # -- statements -----------------------------------------------------------

    def _create_jobs(self, tx: MemoryTransaction, jobs: Sequence[NewJob]) -> Sequence[JobRecord]:
        now = self.now()
        for job in jobs:
            row = _Row(job, self._scheduled_at(now, job.scheduled_at, job.delay_ms), now)
            self._insert(tx, row)
        return CreatedRecords(
            jobs,
            created_at=now,
            scheduled_at=lambda job: self._scheduled_at(now, job.scheduled_at, job.delay_ms),
        )

    def _scheduled_at(
        self, now: datetime, scheduled_at: datetime | None, delay_ms: int
    ) -> datetime:
        if scheduled_at is not None:
            return _aware(scheduled_at, "scheduled_at")
        return now + timedelta(milliseconds=delay_ms) if delay_ms else now

    def _acquire_jobs(
        self,
        tx: MemoryTransaction,
        queues: Sequence[str],
        limit: int,
        owner: str,
        lease_ms: int,
    ) -> list[JobRecord]:
        now = self.now()
        leased_until = now + timedelta(milliseconds=lease_ms)
        names = list(dict.fromkeys(queues))
        acquired: list[JobRecord] = []
        while len(acquired) < limit:
            best: tuple[datetime, int, str] | None = None
            best_queue = ""
            for name in names:
                head = self._pending_head(name)
                if head is not None and head[0] <= now and (best is None or head < best):
                    best, best_queue = head, name
            if best is None:
                break
            heapq.heappop(self._pending[best_queue])
            row = self._jobs[best[2]]
            self._touch(tx, row)
            row.status = _RUNNING
            row.attempt += 1
            row.leased_by = owner
            row.leased_until = leased_until
            row.updated_at = now
            self._index(row)
            acquired.append(row.record())
        return acquired

    def _renew_lease(self, tx: MemoryTransaction, lease: Lease, lease_ms: int) -> datetime:
        row = self._guarded(lease)
        now = self.now()
        self._touch(tx, row)
        row.leased_until = now + timedelta(milliseconds=lease_ms)
        row.updated_at = now
        self._index(row)
        return row.leased_until

    def _lock_job(self, tx: MemoryTransaction, lease: Lease) -> JobRecord:
        return self._guarded(lease).record()

    def _finish(
        self,
        tx: MemoryTransaction,
        row: _Row,
        status: JobStatus,
        now: datetime,
        *,
        continued: bool = False,
    ) -> None:
        self._touch(tx, row)
        row.status = status
        row.leased_by = None
        row.leased_until = None
        row.completed_at = now
        row.updated_at = now
        if not continued and self._blockers.dependents:
            self._blockers.chain_ended(self, tx, row, now)

    def _complete_job(self, tx: MemoryTransaction, lease: Lease, output: str) -> JobRecord:
        row = self._guarded(lease)
        self._blockers.take_unblocked()  # what earlier writes unblocked is not this one's
        self._finish(tx, row, _COMPLETED, self.now())
        row.output = output
        unblocked = self._blockers.take_unblocked()
        if unblocked:
            return dataclasses.replace(row.record(), unblocked_queues=unblocked)
        return row.record()

    def _continue_job(self, tx: MemoryTransaction, lease: Lease, next_job: NewJob) -> JobRecord:
        row = self._guarded(lease)
        now = self.now()
        new = _Row(next_job, self._scheduled_at(now, next_job.scheduled_at, next_job.delay_ms), now)
        self._insert(tx, new)
        self._finish(tx, row, _COMPLETED, now, continued=True)
        row.next_job_id = new.id
        return new.record()

    def _reschedule_job(
        self,
        tx: MemoryTransaction,
        lease: Lease,
        error: JobError | None,
        delay_ms: int,
        scheduled_at: datetime | None,
        refund_attempt: bool,
    ) -> JobRecord:
        row = self._guarded(lease)
        now = self.now()
        when = self._scheduled_at(now, scheduled_at, delay_ms)
        self._touch(tx, row)
        row.status = _PENDING
        row.scheduled_at = when
        row.error = error
        row.leased_by = None
        row.leased_until = None
        row.updated_at = now
        if refund_attempt:
            row.attempt -= 1
        self._index(row)
        return row.record()

    def _fail_job(self, tx: MemoryTransaction, lease: Lease, error: JobError) -> JobRecord:
        row = self._guarded(lease)
        self._finish(tx, row, _FAILED, self.now())
        row.error = error
        return row.record()

    def _reap_expired_leases(self, tx: MemoryTransaction, limit: int) -> list[JobRecord]:
        now = self.now()
        jobs = self._jobs
        reaped: list[JobRecord] = []
        # Re-read the heap each round: re-indexing a reaped row may rebuild it.
        while self._leases and len(reaped) < limit and self._leases[0][0] < now:
            leased_until, job_id = heapq.heappop(self._leases)
            row = jobs.get(job_id)
            if row is None or row.status is not _RUNNING or row.leased_until != leased_until:
                continue
            if row.attempt >= row.max_attempts:
                self._finish(tx, row, _FAILED, now)
            else:
                self._touch(tx, row)
                row.status = _PENDING
                row.scheduled_at = now
                row.leased_by = None
                row.leased_until = None
                row.updated_at = now
                self._index(row)
            row.error = LEASE_EXPIRED_ERROR
            reaped.append(row.record())
        return reaped

    def _cancel_chain(self, tx: MemoryTransaction, chain_id: str) -> ChainRecord | None:
        chain = self._chains.get(chain_id)
        if chain is None:
            return None
        last = chain.last()
        if last.status is _PENDING or last.status is _BLOCKED:
            self._finish(tx, last, _CANCELLED, self.now())
        return _chain_record(chain_id, chain, self._dedup.keys.get(chain_id))

    def _time_until_next_job(self, tx: MemoryTransaction, queues: Sequence[str]) -> float | None:
        earliest: datetime | None = None
        for name in dict.fromkeys(queues):
            head = self._pending_head(name)
            if head is not None and (earliest is None or head[0] < earliest):
                earliest = head[0]
        if earliest is None:
            return None
        return max(0.0, (earliest - self.now()).total_seconds())

    def _get_job(self, tx: MemoryTransaction, job_id: str) -> JobRecord | None:
        row = self._jobs.get(job_id)
        return None if row is None else row.record()

    def _list_jobs(
        self, tx: MemoryTransaction, filter: JobFilter, after: str | None, limit: int
    ) -> Page[JobRecord]:
        if filter.newest_first or filter.created_after or filter.created_before:
            return memory_control.list_jobs(self, filter, after, limit)
        ids: Iterable[str]
        if filter.chain_id is not None:
            chain = self._chains.get(filter.chain_id)
            chain_ids = sorted(row.id for row in chain.rows.values()) if chain else []
            ids = _keys_after(chain_ids, after)
        else:
            ids = _keys_after(self._job_ids, after)
        statuses = None if filter.statuses is None else frozenset(filter.statuses)
        queues = None if filter.queues is None else frozenset(filter.queues)
        items: list[JobRecord] = []
        if limit > 0:
            for job_id in ids:
                row = self._jobs[job_id]
                if statuses is not None and row.status not in statuses:
                    continue
                if queues is not None and row.queue not in queues:
                    continue
                items.append(row.record())
                if len(items) == limit:
                    break
        return keyset_page(items, limit)

    def _get_chain(self, tx: MemoryTransaction, chain_id: str) -> ChainRecord | None:
        chain = self._chains.get(chain_id)
        return (
            None
            if chain is None
            else _chain_record(chain_id, chain, self._dedup.keys.get(chain_id))
        )

    def _list_chains(
        self, tx: MemoryTransaction, filter: ChainFilter, after: str | None, limit: int
    ) -> Page[ChainRecord]:
        if filter.newest_first or filter.created_after or filter.created_before:
            return memory_control.list_chains(self, filter, after, limit)
        statuses = None if filter.statuses is None else frozenset(filter.statuses)
        names = None if filter.chain_names is None else frozenset(filter.chain_names)
        items: list[ChainRecord] = []
        if limit > 0:
            for chain_id in _keys_after(self._chain_ids, after):
                chain = self._chains[chain_id]
                if names is not None and chain.first().chain_name not in names:
                    continue
                if statuses is not None and chain.last().status not in statuses:
                    continue
                if filter.queues is not None and chain.last().queue not in filter.queues:
                    continue
                key = self._dedup.keys.get(chain_id)
                if filter.dedup_key is not None and key != filter.dedup_key:
                    continue
                items.append(_chain_record(chain_id, chain, key))
                if len(items) == limit:
                    break
        return keyset_page(items, limit)

    def _delete_chains(self, tx: MemoryTransaction, chain_ids: Sequence[str]) -> int:
        deleted = 0
        for chain_id in dict.fromkeys(chain_ids):
            chain = self._chains.get(chain_id)
            if chain is None:
                continue
            deleted += 1
            for row in list(chain.rows.values()):
                self._unlink(row)
                tx._undo.append((_DELETED, row, None))
        return deleted

    # -- control from outside a worker (statements in memory_control) -------------------
    # -- limits ----------------------------------------------------------------------

    async def acquire_limited_jobs(
        self,
        *,
        tx: MemoryTransaction | None,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        concurrency_limit: int,
        per_key: bool,
    ) -> list[JobRecord]:
        return await self._run(
            tx,
            self._acquire_limited_jobs,
            queue,
            limit,
            owner,
            lease_ms,
            concurrency_limit,
            per_key,
        )

    def _acquire_limited_jobs(
        self,
        tx: MemoryTransaction,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        concurrency_limit: int,
        per_key: bool,
    ) -> list[JobRecord]:
        return acquire_limited(self, tx, queue, limit, owner, lease_ms, concurrency_limit, per_key)

    # -- rate limits (statements in memory_rates) ----------------------------------------

    async def acquire_rate_limited_jobs(
        self,
        *,
        tx: MemoryTransaction | None,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        rate: int,
        window_ms: int,
        per_key: bool,
        concurrency_limit: int | None,
    ) -> RateAcquisition:
        windows = self._rate_windows
        return await self._run(
            tx,
            lambda t: memory_rates.acquire(
                self,
                windows,
                t,
                queue=queue,
                limit=limit,
                owner=owner,
                lease_ms=lease_ms,
                rate=rate,
                window_ms=window_ms,
                per_key=per_key,
                concurrency_limit=concurrency_limit,
            ),
        )

    # -- schedules --------------------------------------------------------------------

    async def start_scheduled_chain(
        self, *, tx: MemoryTransaction | None, schedule: str, slot_time: datetime, job: NewJob
    ) -> bool:
        return await self._run(tx, self._start_scheduled_chain, schedule, slot_time, job)

    def _start_scheduled_chain(
        self, tx: MemoryTransaction, schedule: str, slot_time: datetime, job: NewJob
    ) -> bool:
        slots = self._schedule_slots()
        key = (schedule, _aware(slot_time, "slot_time"))
        if key in slots:
            return False
        self._create_jobs(tx, [job])
        slots[key] = ScheduleSlot(schedule=schedule, slot_time=key[1], chain_id=job.chain_id)

        def forget() -> None:
            slots.pop(key, None)

        tx.on_rollback(forget)
        return True

    async def get_last_schedule_slot(
        self, *, tx: MemoryTransaction | None, schedule: str
    ) -> ScheduleSlot | None:
        return await self._run(tx, self._get_last_schedule_slot, schedule)

    def _get_last_schedule_slot(self, tx: MemoryTransaction, schedule: str) -> ScheduleSlot | None:
        found = [slot for (name, _), slot in self._schedule_slots().items() if name == schedule]
        return max(found, key=lambda slot: slot.slot_time, default=None)

    async def get_chain_schedule_slot(
        self, *, tx: MemoryTransaction | None, chain_id: str
    ) -> ScheduleSlot | None:
        return await self._run(tx, self._get_chain_schedule_slot, chain_id)

    def _get_chain_schedule_slot(self, tx: MemoryTransaction, chain_id: str) -> ScheduleSlot | None:
        for slot in self._schedule_slots().values():
            if slot.chain_id == chain_id:
                return slot
        return None

    def _schedule_slots(self) -> dict[tuple[str, datetime], ScheduleSlot]:
        # Created on first use, so that the constructor stays as it is.
        slots: dict[tuple[str, datetime], ScheduleSlot] | None = getattr(
            self, "_slots_by_key", None
        )
        if slots is None:
            slots = {}
            self._slots_by_key: dict[tuple[str, datetime], ScheduleSlot] = slots
        return slots

    async def revoke_chain(self, *, tx: MemoryTransaction | None, chain_id: str) -> RevokedChain:
        return await self._run(tx, lambda t: memory_control.revoke_chain(self, t, chain_id))

    async def resume_job(self, *, tx: MemoryTransaction | None, job_id: str) -> JobRecord:
        return await self._run(tx, lambda t: memory_control.resume_job(self, t, job_id))

    async def settle_job(
        self,
        *,
        tx: MemoryTransaction | None,
        job_id: str,
        output: str | None,
        next_job: NewJob | None,
    ) -> SettledJob:
        return await self._run(
            tx, lambda t: memory_control.settle_job(self, t, job_id, output, next_job)
        )

    async def purge_chains(
        self,
        *,
        tx: MemoryTransaction | None,
        ended_before: datetime,
        statuses: Sequence[JobStatus],
        limit: int,
    ) -> int:
        when = _aware(ended_before, "ended_before")
        return await self._run(
            tx, lambda t: memory_control.purge_chains(self, t, when, statuses, limit)
        )

    async def record_worker(
        self, *, tx: MemoryTransaction | None, worker: WorkerInfo, forget_ms: int
    ) -> None:
        await self._run(tx, lambda t: memory_control.record_worker(self, t, worker, forget_ms))

    async def remove_worker(self, *, tx: MemoryTransaction | None, worker_id: str) -> None:
        await self._run(tx, lambda t: memory_control.remove_worker(self, t, worker_id))

    async def list_workers(self, *, tx: MemoryTransaction | None) -> list[WorkerRecord]:
        return await self._run(tx, lambda t: memory_control.list_workers(self, t))

    async def count_jobs(self, *, tx: MemoryTransaction | None) -> QueueCounts:
        return await self._run(tx, lambda t: memory_control.count_jobs(self, t))

    async def queue_position(
        self, *, tx: MemoryTransaction | None, job_id: str
    ) -> QueuePosition | None:
        return await self._run(tx, lambda t: memory_control.queue_position(self, t, job_id))

    # -- the caller's transaction ------------------------------------------------

    async def is_transaction_open(self, *, tx: MemoryTransaction) -> bool:
        return isinstance(tx, MemoryTransaction) and tx._open

    async def check_transaction(self, *, tx: object) -> MemoryTransaction:
        if not isinstance(tx, MemoryTransaction) or tx._adapter is not self:
            raise InvalidTransactionError(
                f"{describe_transaction(tx)} is not a transaction of this in-memory store"
            )
        if not tx._open:
            raise TransactionClosedError(f"{describe_transaction(tx)} has already ended")
        return tx

    # -- blockers --------------------------------------------------------------

    async def create_blocked_jobs(
        self,
        *,
        tx: MemoryTransaction | None,
        jobs: Sequence[NewJob],
        blocker_chain_ids: Sequence[str],
        run_on_blocker_failure: bool = False,
    ) -> Sequence[JobRecord]:
        return await self._run(
            tx, self._create_blocked_jobs, jobs, blocker_chain_ids, run_on_blocker_failure
        )

    async def continue_blocked_job(
        self,
        *,
        tx: MemoryTransaction | None,
        lease: Lease,
        next_job: NewJob,
        blocker_chain_ids: Sequence[str],
        run_on_blocker_failure: bool = False,
    ) -> JobRecord:
        return await self._run(
            tx,
            self._continue_blocked_job,
            lease,
            next_job,
            blocker_chain_ids,
            run_on_blocker_failure,
        )

    async def get_blockers(
        self, *, tx: MemoryTransaction | None, job_id: str
    ) -> list[BlockerRecord]:
        return await self._run(tx, lambda _tx: self._blockers.records(self, job_id))

    async def list_dependent_chains(
        self, *, tx: MemoryTransaction | None, chain_ids: Sequence[str]
    ) -> list[str]:
        return await self._run(tx, lambda _tx: self._blockers.dependent_chains(self, chain_ids))

    def _create_blocked_jobs(
        self,
        tx: MemoryTransaction,
        jobs: Sequence[NewJob],
        blocker_chain_ids: Sequence[str],
        run_on_failure: bool,
    ) -> list[JobRecord]:
        self._blockers.check(self, blocker_chain_ids)
        self._create_jobs(tx, jobs)
        rows = [self._jobs[job.id] for job in jobs]
        self._blockers.attach(self, tx, rows, blocker_chain_ids, self.now(), run_on_failure)
        return [row.record() for row in rows]

    def _continue_blocked_job(
        self,
        tx: MemoryTransaction,
        lease: Lease,
        next_job: NewJob,
        blocker_chain_ids: Sequence[str],
        run_on_failure: bool,
    ) -> JobRecord:
        self._blockers.check(self, blocker_chain_ids)
        self._continue_job(tx, lease, next_job)
        row = self._jobs[next_job.id]
        self._blockers.attach(self, tx, [row], blocker_chain_ids, self.now(), run_on_failure)
        return row.record()

    # -- deduplication -----------------------------------------------------------

    async def create_deduplicated_jobs(
        self,
        *,
        tx: MemoryTransaction | None,
        jobs: Sequence[NewJob],
        dedup: Sequence[DedupKey],
        blocker_chain_ids: Sequence[str] | None = None,
        run_on_blocker_failure: bool = False,
    ) -> list[str]:
        def create(own: MemoryTransaction) -> list[str]:
            if blocker_chain_ids is not None:
                self._blockers.check(self, blocker_chain_ids)
            holders = self._dedup.create(self, own, jobs, dedup)
            started = [self._jobs[j.id] for j, h in zip(jobs, holders, strict=True) if h == j.id]
            if blocker_chain_ids is not None and started:
                self._blockers.attach(
                    self, own, started, blocker_chain_ids, self.now(), run_on_blocker_failure
                )
            return holders

        return await self._run(tx, create)


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


async def from_url(url: str) -> MemoryStateAdapter:
    """Build an empty, unmigrated :class:`MemoryStateAdapter` from ``memory://`` (or
    ``memory://<any name>``). Each call makes a separate store.

    Raises :class:`~queuert.errors.ConfigurationError` naming ``url`` for any
    other scheme.
    """
    if urlsplit(url).scheme.lower() != "memory" or "://" not in url:
        raise ConfigurationError(
            f"cannot build an in-memory state adapter from {url!r}: expected 'memory://'"
        )
    return MemoryStateAdapter()
