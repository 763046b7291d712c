"""The worker's operations of the SQLite state adapter on jobs: creating,
acquiring, leasing and finishing them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import aiosqlite

from queuert.adapter_support import CreatedRecords
from queuert.errors import LeaseLostError
from queuert.records import LEASE_EXPIRED_ERROR, ChainRecord, JobError, JobRecord, Lease, NewJob
from queuert_sqlite import limits
from queuert_sqlite.base import SqliteBase
from queuert_sqlite.clock import from_us, now_us
from queuert_sqlite.keyed_jobs import set_concurrency_key
from queuert_sqlite.rows import (
    acquisition_order,
    chain_from_row,
    completed_from_row,
    job_from_row,
    new_job_row,
    scheduled_us,
)
from queuert_sqlite.statements import MAX_MERGED_QUEUES

_LEASE_EXPIRED_JSON = LEASE_EXPIRED_ERROR.to_json()

Connection = aiosqlite.Connection


class JobOps(SqliteBase):
    """Jobs from creation to completion."""

    async def create_jobs(
        self, *, tx: Connection | None, jobs: Sequence[NewJob]
    ) -> Sequence[JobRecord]:
        if not jobs:
            return []
        now = now_us()
        rows = [new_job_row(job, now) for job in jobs]
        if any(job.concurrency_key is not None for job in jobs):
            keyed = [(*row, job.concurrency_key) for row, job in zip(rows, jobs, strict=True)]
            async with self._db.atomic(tx) as conn:
                await self._db.run_many(conn, limits.insert_keyed_job(self._sql.jobs_table), keyed)
        elif len(rows) == 1:
            await self._db.write(tx, self._sql.insert_job, rows[0])
        else:
            async with self._db.atomic(tx) as conn:
                await self._db.run_many(conn, self._sql.insert_job, rows)
        created = from_us(now)

        def scheduled_at(job: NewJob) -> datetime:
            if job.scheduled_at is None and job.delay_ms == 0:
                return created
            return from_us(scheduled_us(job.scheduled_at, job.delay_ms, now))

        return CreatedRecords(jobs, created_at=created, scheduled_at=scheduled_at)

    async def acquire_jobs(
        self,
        *,
        tx: Connection | None,
        queues: Sequence[str],
        limit: int,
        owner: str,
        lease_ms: int,
    ) -> list[JobRecord]:
        names = list(dict.fromkeys(queues))
        if limit <= 0 or not names:
            return []
        now = now_us()
        params: list[Any] = [owner, now + lease_ms * 1000, now]
        if len(names) <= MAX_MERGED_QUEUES:
            sql = self._sql.acquire(len(names))
            for queue in names:
                params += (queue, now, limit)
            params.append(limit)
        else:
            sql = self._sql.acquire_any
            params += (json.dumps(names), now, limit)
        rows = await self._db.write(tx, sql, params)
        jobs = [job_from_row(row) for row in rows]
        jobs.sort(key=acquisition_order)
        return jobs

    async def renew_lease(self, *, tx: Connection | None, lease: Lease, lease_ms: int) -> datetime:
        now = now_us()
        rows = await self._db.write(
            tx,
            self._sql.renew_lease,
            (now + lease_ms * 1000, now, lease.job_id, lease.owner, lease.attempt),
        )
        if not rows:
            raise LeaseLostError(lease.job_id)
        return from_us(rows[0][0])

    async def lock_job(self, *, tx: Connection, lease: Lease) -> JobRecord:
        """Verify the lease and take the database write lock, which blocks every other
        writer until ``tx`` ends. ``tx`` must be inside a transaction; one begun with a
        deferred ``BEGIN`` that already read may raise
        :class:`~queuert.errors.TransientStateError` if another writer committed since."""
        # A transaction begun by transaction() holds the write lock already; any other
        # takes it with a write that changes nothing.
        locked = self._db.holds_write_lock(tx)
        sql = self._sql.check_lease if locked else self._sql.lock_job
        rows = await self._db.run(tx, sql, (lease.job_id, lease.owner, lease.attempt))
        if not rows:
            raise LeaseLostError(lease.job_id)
        return job_from_row(rows[0])

    async def complete_job(self, *, tx: Connection | None, lease: Lease, output: str) -> JobRecord:
        if tx is not None:
            now = now_us()
            params = (output, now, now)
            return completed_from_row(
                await self._guarded_write(tx, lease, self._sql.complete_job, params)
            )
        # Completions running at the same time share one transaction (one commit).
        self._db.check_not_holding()
        row = await self._completions.submit((lease, output))
        if row is None:
            raise LeaseLostError(lease.job_id)
        return completed_from_row(row)

    async def continue_job(
        self, *, tx: Connection | None, lease: Lease, next_job: NewJob
    ) -> JobRecord:
        now = now_us()
        job = next_job
        params = (*new_job_row(job, now), lease.job_id, lease.owner, lease.attempt)
        async with self._db.atomic(tx) as conn:
            rows = await self._db.run(conn, self._sql.insert_next_job, params)
            if not rows:
                raise LeaseLostError(lease.job_id)
            if job.concurrency_key is not None:
                # In the inserting transaction: no acquisition sees the job without it.
                await self._db.run(
                    conn, set_concurrency_key(self._sql.jobs_table), (job.concurrency_key, job.id)
                )
            await self._db.run(
                conn,
                self._sql.mark_continued,
                (job.id, now, now, lease.job_id, lease.owner, lease.attempt),
            )
        return job_from_row(rows[0])

    async def reschedule_job(
        self,
        *,
        tx: Connection | None,
        lease: Lease,
        error: JobError | None,
        delay_ms: int = 0,
        scheduled_at: datetime | None = None,
        refund_attempt: bool = False,
    ) -> JobRecord:
        now = now_us()
        return await self._guarded(
            tx,
            lease,
            self._sql.reschedule_job,
            (
                scheduled_us(scheduled_at, delay_ms, now),
                None if error is None else error.to_json(),
                1 if refund_attempt else 0,
                now,
            ),
        )

    async def fail_job(self, *, tx: Connection | None, lease: Lease, error: JobError) -> JobRecord:
        now = now_us()
        return await self._guarded(tx, lease, self._sql.fail_job, (error.to_json(), now, now))

    async def _guarded(
        self, tx: Connection | None, lease: Lease, sql: str, params: tuple[Any, ...]
    ) -> JobRecord:
        return job_from_row(await self._guarded_write(tx, lease, sql, params))

    async def _guarded_write(
        self, tx: Connection | None, lease: Lease, sql: str, params: tuple[Any, ...]
    ) -> Any:
        """The row ``sql`` (guarded by ``lease``, whose values follow ``params``)
        wrote; raises LeaseLostError when it wrote none."""
        rows = await self._db.write(tx, sql, (*params, lease.job_id, lease.owner, lease.attempt))
        if not rows:
            raise LeaseLostError(lease.job_id)
        return rows[0]

    async def reap_expired_leases(self, *, tx: Connection | None, limit: int) -> list[JobRecord]:
        if limit <= 0:
            return []
        now = now_us()
        rows = await self._db.write(
            tx, self._sql.reap, (now, now, _LEASE_EXPIRED_JSON, now, now, limit)
        )
        return sorted((job_from_row(row) for row in rows), key=lambda job: job.id)

    async def cancel_chain(self, *, tx: Connection | None, chain_id: str) -> ChainRecord | None:
        now = now_us()
        async with self._db.atomic(tx) as conn:
            await self._db.run(conn, self._sql.cancel_chain, (now, now, chain_id))
            rows = await self._db.run(conn, self._sql.get_chain, (chain_id,))
        return chain_from_row(rows[0]) if rows else None

    async def time_until_next_job(
        self, *, tx: Connection | None, queues: Sequence[str]
    ) -> float | None:
        if not queues:
            return None
        rows = await self._db.read(tx, self._sql.next_scheduled_at, (json.dumps(list(queues)),))
        earliest = rows[0][0] if rows else None
        if earliest is None:
            return None
        return max(0.0, (int(earliest) - now_us()) / 1_000_000)
