"""Job life-cycle operations of the in-memory state adapter: create, acquire,
renew, complete, continue, reschedule, fail, reap expired leases, cancel.

Each public operation runs one statement through ``MemoryStore._run``: in the
caller's transaction or in one of its own.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Sequence
from datetime import datetime, timedelta

from queuert.adapter_support import CreatedRecords
from queuert.adapters.memory_rows import (
    _BLOCKED,
    _CANCELLED,
    _COMPLETED,
    _FAILED,
    _PENDING,
    _RUNNING,
    _aware,
    _chain_record,
    _Row,
)
from queuert.adapters.memory_store import MemoryStore, MemoryTransaction
from queuert.errors import AdapterError
from queuert.records import (
    LEASE_EXPIRED_ERROR,
    ChainRecord,
    JobError,
    JobRecord,
    Lease,
    NewJob,
)

__all__ = ["MemoryJobs"]


class MemoryJobs(MemoryStore):
    """The job life-cycle operations of
    :class:`~queuert.adapters.memory_state.MemoryStateAdapter`."""

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
