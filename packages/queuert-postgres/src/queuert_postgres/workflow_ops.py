"""Operations of the PostgreSQL state adapter for chains that depend on more than
their own jobs: blockers, deduplication, concurrency limits, rate limits and
schedules.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime

from queuert.blockers import initial_wait
from queuert.errors import JobNotFoundError, TransientStateError
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
from queuert_postgres.adapter_base import PostgresAdapterBase
from queuert_postgres.connections import PostgresTx
from queuert_postgres.limits import LimitStatements, limit_lock_key, limit_statements
from queuert_postgres.rates import LOCK as RATE_LOCK
from queuert_postgres.rates import rate_lock_key, rate_statements
from queuert_postgres.rows import job_record
from queuert_postgres.statements import JOB_COLUMN_COUNT

# How often the lock of blocker chains is retried when they keep continuing meanwhile.
_BLOCKER_LOCK_ROUNDS = 20


class WorkflowOps(PostgresAdapterBase):
    """Blockers, deduplication, limits, rates and schedules (part of
    :class:`~queuert_postgres.PostgresStateAdapter`)."""

    # -- blockers -------------------------------------------------------------------

    def _atomic(self, tx: PostgresTx | None) -> AbstractAsyncContextManager[PostgresTx]:
        """A transaction of the adapter's own, or a savepoint in ``tx``."""
        return self._transaction(None) if tx is None else self._block(tx)

    async def create_blocked_jobs(
        self,
        *,
        tx: PostgresTx | None,
        jobs: Sequence[NewJob],
        blocker_chain_ids: Sequence[str],
        run_on_blocker_failure: bool = False,
    ) -> Sequence[JobRecord]:
        async with self._atomic(tx) as conn:
            statuses = await self._lock_blocker_chains(conn, blocker_chain_ids)
            await self.create_jobs(tx=conn, jobs=jobs)
            ids = [j.id for j in jobs]
            return await self._wait_on(
                conn, ids, blocker_chain_ids, statuses, run_on_blocker_failure
            )

    async def continue_blocked_job(
        self,
        *,
        tx: PostgresTx | None,
        lease: Lease,
        next_job: NewJob,
        blocker_chain_ids: Sequence[str],
        run_on_blocker_failure: bool = False,
    ) -> JobRecord:
        async with self._atomic(tx) as conn:
            statuses = await self._lock_blocker_chains(conn, blocker_chain_ids)
            await self.continue_job(tx=conn, lease=lease, next_job=next_job)
            (record,) = await self._wait_on(
                conn, [next_job.id], blocker_chain_ids, statuses, run_on_blocker_failure
            )
            return record

    async def _lock_blocker_chains(
        self, conn: PostgresTx, chain_ids: Sequence[str]
    ) -> dict[str, str]:
        """The status of each chain's last job, share-locked until ``conn``'s
        transaction ends. Raises JobNotFoundError (through initial_wait) for a chain
        that does not exist."""
        sql = self._blocker_sql
        statuses: dict[str, str] = {}
        wanted = sorted(set(chain_ids))
        for _ in range(_BLOCKER_LOCK_ROUNDS):
            rows = await self._fetch(conn, sql.lock_chain_heads, wanted)
            statuses.update((row[0], row[1]) for row in rows)
            wanted = [chain_id for chain_id in wanted if chain_id not in statuses]
            if not wanted:
                return statuses
            existing = {row[0] for row in await self._fetch(conn, sql.existing_chains, wanted)}
            missing = [c for c in chain_ids if c not in statuses and c not in existing]
            if missing:
                raise JobNotFoundError(f"blocker chain {missing[0]!r} does not exist")
            # The rest continued while this waited for their locks: read their new ends.
        raise TransientStateError("blocker chains kept moving on while being locked; retry")

    async def _wait_on(
        self,
        conn: PostgresTx,
        job_ids: list[str],
        blocker_chain_ids: Sequence[str],
        statuses: dict[str, str],
        run_on_failure: bool,
    ) -> list[JobRecord]:
        status, left, error = initial_wait(statuses, blocker_chain_ids, run_on_failure)
        sql = self._blocker_sql
        await self._fetch(conn, sql.insert_blockers, job_ids, list(blocker_chain_ids))
        rows = await self._fetch(
            conn,
            sql.set_waiting,
            job_ids,
            status.value,
            left,
            None if error is None else error.to_json(),
            run_on_failure,
        )
        by_id = {record.id: record for record in map(job_record, rows)}
        return [by_id[job_id] for job_id in job_ids]

    async def get_blockers(self, *, tx: PostgresTx | None, job_id: str) -> list[BlockerRecord]:
        rows = await self._fetch(tx, self._blocker_sql.get_blockers, job_id)
        return [
            BlockerRecord(chain_id=r[0], chain_name=r[1], status=JobStatus(r[2]), output=r[3])
            for r in rows
        ]

    async def list_dependent_chains(
        self, *, tx: PostgresTx | None, chain_ids: Sequence[str]
    ) -> list[str]:
        if not chain_ids:
            return []
        rows = await self._fetch(tx, self._blocker_sql.dependent_chains, list(chain_ids))
        return [row[0] for row in rows]

    # -- deduplication ---------------------------------------------------------------

    async def create_deduplicated_jobs(
        self,
        *,
        tx: PostgresTx | None,
        jobs: Sequence[NewJob],
        dedup: Sequence[DedupKey],
        blocker_chain_ids: Sequence[str] | None = None,
        run_on_blocker_failure: bool = False,
    ) -> list[str]:
        sql = self._dedup_sql
        holders: list[str] = []
        async with self._atomic(tx) as conn:
            statuses: dict[str, str] = {}
            if blocker_chain_ids is not None:
                # Share-locked until commit, so the statuses stay true for every job.
                statuses = await self._lock_blocker_chains(conn, blocker_chain_ids)
            for job, request in zip(jobs, dedup, strict=True):
                name, key = job.chain_name, request.key
                taken = await self._fetchrow(conn, sql.insert_key, name, key, job.chain_id)
                if taken is None:
                    holder = await self._fetchrow(conn, sql.lock_key, name, key)
                    assert holder is not None  # key rows are never deleted
                    scope = request.scope.value
                    kept = await self._fetchrow(
                        conn, sql.holds_key, name, key, scope, request.window_ms
                    )
                    if kept is not None and kept[0]:
                        holders.append(holder[0])
                        continue
                    await self._fetch(conn, sql.take_over_key, name, key, job.chain_id)
                await self.create_jobs(tx=conn, jobs=[job])
                await self._fetch(conn, sql.mark_key, job.id, request.key)
                if blocker_chain_ids is not None:
                    await self._wait_on(
                        conn, [job.id], blocker_chain_ids, statuses, run_on_blocker_failure
                    )
                holders.append(job.chain_id)
        return holders

    # -- limits ------------------------------------------------------------------------

    async def acquire_limited_jobs(
        self,
        *,
        tx: PostgresTx | None,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        concurrency_limit: int,
        per_key: bool,
    ) -> list[JobRecord]:
        """As the port says: one call of the schema's acquisition function (the queue's
        advisory lock, then the counting acquisition; see :mod:`queuert_postgres.limits`),
        in ``tx`` or as a transaction of its own."""
        if limit <= 0:
            return []
        rows = await self._fetch(
            tx,
            limit_statements(self._sql).acquire,
            queue,
            limit,
            owner,
            lease_ms,
            concurrency_limit,
            per_key,
            limit_lock_key(self._names, queue),
        )
        jobs = [job_record(row) for row in rows]
        jobs.sort(key=lambda j: (j.scheduled_at, -j.priority, j.id))
        return jobs

    # -- rate limits -------------------------------------------------------------------------

    async def acquire_rate_limited_jobs(
        self,
        *,
        tx: PostgresTx | None,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        rate: int,
        window_ms: int,
        per_key: bool,
        concurrency_limit: int | None,
    ) -> RateAcquisition:
        """As the port says: the queue's advisory lock (see :mod:`queuert_postgres.rates`)
        and the counting acquisition run in ``tx`` or in a transaction of their own."""
        if limit <= 0:
            return RateAcquisition()
        args = (queue, limit, owner, lease_ms, rate, window_ms, per_key, concurrency_limit)
        key = rate_lock_key(self._names, queue)
        sql = rate_statements(self._sql)
        statement = sql.acquire_under_rate if per_key else sql.acquire_under_queue_rate
        if tx is None:
            async with self._transaction(None) as conn:
                await self._fetch(conn, RATE_LOCK, key)
                rows = await self._fetch(conn, statement, *args)
        else:
            await self._fetch(tx, RATE_LOCK, key)
            rows = await self._fetch(tx, statement, *args)
        jobs = [job_record(row) for row in rows if row[0] is not None]
        jobs.sort(key=lambda j: (j.scheduled_at, -j.priority, j.id))
        held_back, next_window_ms = rows[0][JOB_COLUMN_COUNT], rows[0][JOB_COLUMN_COUNT + 1]
        return RateAcquisition(jobs, int(next_window_ms) if held_back else None)

    # -- schedules ------------------------------------------------------------------------

    async def start_scheduled_chain(
        self, *, tx: PostgresTx | None, schedule: str, slot_time: datetime, job: NewJob
    ) -> bool:
        """As the port says: a second start of a slot waits for the first one's
        transaction on the slot's key, then finds it taken."""
        sql = limit_statements(self._sql)
        if tx is None:
            async with self._transaction(None) as conn:
                return await self._start_slot(conn, sql, schedule, slot_time, job)
        return await self._start_slot(tx, sql, schedule, slot_time, job)

    async def _start_slot(
        self,
        conn: PostgresTx,
        sql: LimitStatements,
        schedule: str,
        slot_time: datetime,
        job: NewJob,
    ) -> bool:
        row = await self._fetchrow(
            conn, sql.insert_schedule_slot, schedule, slot_time, job.chain_id
        )
        if row is None:
            return False
        await self.create_jobs(tx=conn, jobs=[job])
        return True

    async def get_last_schedule_slot(
        self, *, tx: PostgresTx | None, schedule: str
    ) -> ScheduleSlot | None:
        row = await self._fetchrow(tx, limit_statements(self._sql).last_schedule_slot, schedule)
        return None if row is None else ScheduleSlot(row[0], row[1], row[2])

    async def get_chain_schedule_slot(
        self, *, tx: PostgresTx | None, chain_id: str
    ) -> ScheduleSlot | None:
        row = await self._fetchrow(tx, limit_statements(self._sql).chain_schedule_slot, chain_id)
        return None if row is None else ScheduleSlot(row[0], row[1], row[2])
