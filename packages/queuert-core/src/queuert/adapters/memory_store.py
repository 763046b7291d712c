"""The in-memory state adapter's store: its data structures and indexes, and the
transaction machinery (undo log, savepoints, the lock that serialises
transactions) every statement runs under.

:class:`MemoryStore` is the base of
:class:`~queuert.adapters.memory_state.MemoryStateAdapter`; the statements that
read and write jobs build on its primitives (``_insert``, ``_touch``,
``_index``, ``_finish``), so that every write lands in the undo log and a
rollback restores the store exactly.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar, cast

from queuert.adapters.memory_blockers import MemoryBlockers
from queuert.adapters.memory_dedup import MemoryDedup
from queuert.adapters.memory_rates import MemoryRateWindows
from queuert.adapters.memory_rows import (
    _PENDING,
    _RUNNING,
    _Chain,
    _insort_unique,
    _remove_sorted,
    _Row,
    _system_clock,
)
from queuert.control_records import WorkerRecord
from queuert.errors import AdapterError, LeaseLostError, SchemaNotMigratedError
from queuert.records import JobStatus, Lease

if TYPE_CHECKING:
    from queuert.adapters.memory_state import MemoryStateAdapter

__all__ = ["MemoryStore", "MemoryTransaction"]

P = ParamSpec("P")
R = TypeVar("R")

_NOT_MIGRATED = "the in-memory store is not migrated: run `await adapter.migrate()` before using it"

# Undo log entries: (_INSERTED, row, None) | (_UPDATED, row, snapshot) |
# (_DELETED, row, None) | (_CALLBACK, callback, None).
_INSERTED = 0
_UPDATED = 1
_DELETED = 2
_CALLBACK = 3
_UndoEntry = tuple[int, object, object]


class MemoryTransaction:
    """A transaction of :class:`~queuert.adapters.memory_state.MemoryStateAdapter`:
    the ``Tx`` the adapter's operations take. Usable only while its ``async
    with`` block runs; an operation given a transaction that has ended raises
    :class:`~queuert.errors.AdapterError`."""

    # Named by its public module, where users import it: reprs and error messages show it.
    __module__ = "queuert.adapters.memory_state"

    __slots__ = ("_adapter", "_open", "_undo")

    def __init__(self, adapter: MemoryStore) -> None:
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

    def __init__(self, adapter: MemoryStore) -> None:
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


class MemoryStore:
    """The data and transaction machinery of
    :class:`~queuert.adapters.memory_state.MemoryStateAdapter`.

    Pending jobs are indexed per queue by ``(scheduled_at, -priority, id)`` and
    running jobs by lease expiry, so acquiring ``k`` jobs and reaping ``k``
    leases cost ``O(k log n)``.
    """

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
        # The same two for jobs with a concurrency key, per (queue, key): a hand-off
        # under a per-key limit reads its key's jobs only, not every key's.
        self._pending_keyed: dict[tuple[str, str], list[tuple[datetime, int, str]]] = {}
        self._running_keyed: dict[tuple[str, str], set[str]] = {}
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
        key = row.concurrency_key
        if row.status is _PENDING:
            entry = (row.scheduled_at, -row.priority, row.id)
            heap = self._pending.get(row.queue)
            if heap is None:
                heap = self._pending[row.queue] = []
            heapq.heappush(heap, entry)
            if key is not None:
                heapq.heappush(self._pending_keyed.setdefault((row.queue, key), []), entry)
        elif row.status is _RUNNING and row.leased_until is not None:
            heapq.heappush(self._leases, (row.leased_until, row.id))
            self._running.setdefault(row.queue, set()).add(row.id)
            if key is not None:
                self._running_keyed.setdefault((row.queue, key), set()).add(row.id)
        else:
            return
        self._stale_pushes += 1
        if self._stale_pushes > 1024 + 2 * len(self._jobs):
            self._rebuild_indexes()

    def _rebuild_indexes(self) -> None:
        pending: dict[str, list[tuple[datetime, int, str]]] = {}
        pending_keyed: dict[tuple[str, str], list[tuple[datetime, int, str]]] = {}
        leases: list[tuple[datetime, str]] = []
        running: dict[str, set[str]] = {}
        running_keyed: dict[tuple[str, str], set[str]] = {}
        for row in self._jobs.values():
            key = row.concurrency_key
            if row.status is _PENDING:
                entry = (row.scheduled_at, -row.priority, row.id)
                pending.setdefault(row.queue, []).append(entry)
                if key is not None:
                    pending_keyed.setdefault((row.queue, key), []).append(entry)
            elif row.status is _RUNNING and row.leased_until is not None:
                leases.append((row.leased_until, row.id))
                running.setdefault(row.queue, set()).add(row.id)
                if key is not None:
                    running_keyed.setdefault((row.queue, key), set()).add(row.id)
        for heap in (*pending.values(), *pending_keyed.values()):
            heapq.heapify(heap)
        heapq.heapify(leases)
        self._pending = pending
        self._pending_keyed = pending_keyed
        self._leases = leases
        self._running = running
        self._running_keyed = running_keyed
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
            # Every store is a MemoryStateAdapter: this class is only its base.
            self._blockers.chain_ended(cast("MemoryStateAdapter", self), tx, row, now)
