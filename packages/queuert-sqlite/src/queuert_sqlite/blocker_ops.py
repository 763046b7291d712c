"""The blocker operations of the SQLite state adapter: jobs that wait on other
chains (statements in :mod:`queuert_sqlite.blockers`)."""

from __future__ import annotations

from collections.abc import Sequence

import aiosqlite

from queuert.records import BlockerRecord, JobRecord, Lease, NewJob
from queuert_sqlite.base import SqliteBase
from queuert_sqlite.blockers import blocker_record, blocker_rows, ids_json, waiting_state
from queuert_sqlite.clock import now_us
from queuert_sqlite.rows import job_from_row

Connection = aiosqlite.Connection


class BlockerOps(SqliteBase):
    """Blocked jobs (capability ``blockers``)."""

    async def create_blocked_jobs(
        self,
        *,
        tx: Connection | None,
        jobs: Sequence[NewJob],
        blocker_chain_ids: Sequence[str],
        run_on_blocker_failure: bool = False,
    ) -> Sequence[JobRecord]:
        """As the port says; inside one write transaction, so no blocker chain ends
        between the read of its state and the commit (a caller's transaction begun
        with a deferred ``BEGIN`` raises TransientStateError if one did)."""
        async with self._db.atomic(tx) as conn:
            state = await self._waiting_state(conn, blocker_chain_ids, run_on_blocker_failure)
            await self.create_jobs(tx=conn, jobs=jobs)
            return await self._wait_on(conn, [job.id for job in jobs], blocker_chain_ids, state)

    async def continue_blocked_job(
        self,
        *,
        tx: Connection | None,
        lease: Lease,
        next_job: NewJob,
        blocker_chain_ids: Sequence[str],
        run_on_blocker_failure: bool = False,
    ) -> JobRecord:
        async with self._db.atomic(tx) as conn:
            state = await self._waiting_state(conn, blocker_chain_ids, run_on_blocker_failure)
            await self.continue_job(tx=conn, lease=lease, next_job=next_job)
            (record,) = await self._wait_on(conn, [next_job.id], blocker_chain_ids, state)
            return record

    async def _waiting_state(
        self, conn: Connection, blocker_chain_ids: Sequence[str], run_on_failure: bool
    ) -> tuple[str, int, str | None, int | None, int]:
        heads = await self._db.run(
            conn, self._blocker_sql.chain_heads, (ids_json(blocker_chain_ids),)
        )
        wait = waiting_state(heads, blocker_chain_ids, now_us(), run_on_failure)
        return (*wait, 1 if run_on_failure else 0)

    async def _wait_on(
        self,
        conn: Connection,
        job_ids: list[str],
        blocker_chain_ids: Sequence[str],
        state: tuple[str, int, str | None, int | None, int],
    ) -> list[JobRecord]:
        sql = self._blocker_sql
        status, left, error, completed_at, runs = state
        now = now_us()
        await self._db.run_many(conn, sql.insert_blocker, blocker_rows(job_ids, blocker_chain_ids))
        rows = await self._db.run(
            conn,
            sql.set_waiting,
            (status, left, error, completed_at, now, runs, ids_json(job_ids)),
        )
        by_id = {record.id: record for record in map(job_from_row, rows)}
        return [by_id[job_id] for job_id in job_ids]

    async def get_blockers(self, *, tx: Connection | None, job_id: str) -> list[BlockerRecord]:
        rows = await self._db.read(tx, self._blocker_sql.get_blockers, (job_id,))
        return [blocker_record(row) for row in rows]

    async def list_dependent_chains(
        self, *, tx: Connection | None, chain_ids: Sequence[str]
    ) -> list[str]:
        if not chain_ids:
            return []
        rows = await self._db.read(tx, self._blocker_sql.dependent_chains, (ids_json(chain_ids),))
        return [row[0] for row in rows]
