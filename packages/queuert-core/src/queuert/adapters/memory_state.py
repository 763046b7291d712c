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

The adapter is assembled from small modules: the rows in ``memory_rows``, the
store's indexes and transactions in ``memory_store``, the job life cycle in
``memory_jobs``, reads in ``memory_reads``; features keep their statements
beside them (``memory_control``, ``memory_limits``, ``memory_rates``,
``memory_blockers``, ``memory_dedup``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlsplit

from queuert.adapters import memory_control, memory_rates
from queuert.adapters.memory_jobs import MemoryJobs
from queuert.adapters.memory_limits import acquire_limited, hand_off
from queuert.adapters.memory_reads import MemoryReads
from queuert.adapters.memory_rows import _aware
from queuert.adapters.memory_rows import _Row as _Row  # importable here, as before the split
from queuert.adapters.memory_store import _DELETED, _NOT_MIGRATED, MemoryTransaction
from queuert.control_records import (
    QueueCounts,
    QueuePosition,
    RevokedChain,
    SettledJob,
    WorkerInfo,
    WorkerRecord,
)
from queuert.errors import (
    ConfigurationError,
    InvalidTransactionError,
    SchemaNotMigratedError,
    TransactionClosedError,
)
from queuert.ports.state import StateAdapter, StateCapabilities, describe_transaction
from queuert.rate_records import RateAcquisition
from queuert.records import (
    BlockerRecord,
    DedupKey,
    JobRecord,
    JobStatus,
    Lease,
    NewJob,
    ScheduleSlot,
)

__all__ = ["MemoryStateAdapter", "MemoryTransaction", "from_url"]


class MemoryStateAdapter(MemoryJobs, MemoryReads, StateAdapter[MemoryTransaction]):
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
        hand_off=True,
    )

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

    async def delete_chains(self, *, tx: MemoryTransaction | None, chain_ids: Sequence[str]) -> int:
        return await self._run(tx, self._delete_chains, chain_ids)

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

    async def complete_job_and_hand_off(
        self,
        *,
        lease: Lease,
        output: str,
        lease_ms: int,
        concurrency_limit: int,
        per_key: bool,
        lease_margin_ms: int,
    ) -> tuple[JobRecord, JobRecord | None]:
        # One statement in a transaction of its own: the completion and the lease of
        # the next job commit, or roll back, together.
        return await self._run(
            None,
            lambda t: hand_off(
                self, t, lease, output, lease_ms, concurrency_limit, per_key, lease_margin_ms
            ),
        )

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
