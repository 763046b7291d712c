"""The control operations of the SQLite state adapter, from outside a worker:
deleting, revoking, resuming, settling and purging, worker records, counts and
queue positions (statements in :mod:`queuert_sqlite.control`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import aiosqlite

from queuert.control_records import (
    QueueCounts,
    QueuePosition,
    RevokedChain,
    SettledJob,
    WorkerInfo,
    WorkerRecord,
)
from queuert.records import JobRecord, JobStatus, NewJob
from queuert_sqlite import control
from queuert_sqlite.base import SqliteBase
from queuert_sqlite.clock import to_us
from queuert_sqlite.rows import new_job_row

Connection = aiosqlite.Connection


class ControlOps(SqliteBase):
    """Control from outside a worker."""

    async def delete_chains(self, *, tx: Connection | None, chain_ids: Sequence[str]) -> int:
        return await control.delete_chains(self._db, self._sql, self._blocker_sql, tx, chain_ids)

    async def revoke_chain(self, *, tx: Connection | None, chain_id: str) -> RevokedChain:
        return await control.revoke_chain(self._db, self._sql, self._ctl, tx, chain_id)

    async def resume_job(self, *, tx: Connection | None, job_id: str) -> JobRecord:
        return await control.resume_job(self._db, self._sql, self._ctl, tx, job_id)

    async def settle_job(
        self, *, tx: Connection | None, job_id: str, output: str | None, next_job: NewJob | None
    ) -> SettledJob:
        return await control.settle_job(
            self._db, self._sql, self._ctl, tx, job_id, output, next_job, new_job_row
        )

    async def purge_chains(
        self,
        *,
        tx: Connection | None,
        ended_before: datetime,
        statuses: Sequence[JobStatus],
        limit: int,
    ) -> int:
        before = to_us(ended_before, "ended_before")
        return await control.purge_chains(
            self._db, self._ctl, self._blocker_sql, tx, statuses, before, limit
        )

    async def record_worker(
        self, *, tx: Connection | None, worker: WorkerInfo, forget_ms: int
    ) -> None:
        await control.record_worker(self._db, self._ctl, tx, worker, forget_ms)

    async def remove_worker(self, *, tx: Connection | None, worker_id: str) -> None:
        await self._db.write(tx, self._ctl.remove_worker, (worker_id,))

    async def list_workers(self, *, tx: Connection | None) -> list[WorkerRecord]:
        return await control.list_workers(self._db, self._ctl, tx)

    async def count_jobs(self, *, tx: Connection | None) -> QueueCounts:
        return await control.count_jobs(self._db, self._ctl, tx)

    async def queue_position(self, *, tx: Connection | None, job_id: str) -> QueuePosition | None:
        return await control.queue_position(self._db, self._sql, self._ctl, tx, job_id)
