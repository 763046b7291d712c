"""Operations of the PostgreSQL state adapter that control jobs from outside a
worker: revoke, resume, settle, purge, workers and counts (SQL in
:mod:`queuert_postgres.control`, the steps in :mod:`queuert_postgres.control_ops`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

from queuert.control_records import (
    QueueCounts,
    QueuePosition,
    RevokedChain,
    SettledJob,
    WorkerInfo,
    WorkerRecord,
)
from queuert.records import (
    JobRecord,
    JobStatus,
    NewJob,
)
from queuert_postgres import control_ops as postgres_control
from queuert_postgres import migrations
from queuert_postgres.adapter_base import PostgresAdapterBase
from queuert_postgres.connections import PostgresTx
from queuert_postgres.control import ControlStatements
from queuert_postgres.driver_errors import DRIVER_ERRORS
from queuert_postgres.job_args import new_job_args
from queuert_postgres.rows import job_record
from queuert_postgres.statements import JOB_COLUMN_COUNT


class AdminOps(PostgresAdapterBase):
    """Control from outside a worker (part of :class:`~queuert_postgres.PostgresStateAdapter`)."""

    _ctl: ControlStatements | None

    # -- control from outside a worker (SQL in queuert_postgres.control) -----------------

    def _control(self) -> ControlStatements:
        # Rebuilt when bind_notify replaced the statements (their signal channels).
        if self._ctl is None or self._ctl.sql is not self._sql:
            self._ctl = ControlStatements(self._sql)
        return self._ctl

    @asynccontextmanager
    async def _unit(self, tx: PostgresTx | None) -> AsyncIterator[PostgresTx]:
        """Several statements as one unit: a transaction of the adapter's own, or a
        savepoint inside ``tx``; driver errors of the statements are translated."""
        try:
            if tx is None:
                async with self.transaction() as conn:
                    yield conn
            else:
                async with self._block(tx) as conn:
                    yield conn
        except DRIVER_ERRORS as exc:
            self._raise(exc)

    async def revoke_chain(self, *, tx: PostgresTx | None, chain_id: str) -> RevokedChain:
        return await postgres_control.revoke_chain(self, self._control(), tx, chain_id)

    async def resume_job(self, *, tx: PostgresTx | None, job_id: str) -> JobRecord:
        return await postgres_control.resume_job(self, self._control(), tx, job_id)

    async def settle_job(
        self, *, tx: PostgresTx | None, job_id: str, output: str | None, next_job: NewJob | None
    ) -> SettledJob:
        return await postgres_control.settle_job(
            self, self._control(), tx, job_id, output, next_job, new_job_args
        )

    async def purge_chains(
        self,
        *,
        tx: PostgresTx | None,
        ended_before: datetime,
        statuses: Sequence[JobStatus],
        limit: int,
    ) -> int:
        names = [JobStatus(s).value for s in statuses]
        row = await self._fetchrow(tx, self._control().purge, names, ended_before, limit)
        return 0 if row is None else int(row[0])

    async def record_worker(
        self, *, tx: PostgresTx | None, worker: WorkerInfo, forget_ms: int
    ) -> None:
        await self._fetchrow(
            tx,
            self._control().record_worker,
            worker.id,
            worker.host,
            worker.pid,
            list(worker.queues),
            worker.concurrency,
            worker.purges,
            forget_ms,
        )

    async def remove_worker(self, *, tx: PostgresTx | None, worker_id: str) -> None:
        await self._fetch(tx, self._control().remove_worker, worker_id)

    async def list_workers(self, *, tx: PostgresTx | None) -> list[WorkerRecord]:
        rows = await self._fetch(tx, self._control().list_workers)
        return [postgres_control.worker_record(row) for row in rows]

    async def count_jobs(self, *, tx: PostgresTx | None) -> QueueCounts:
        rows = await self._fetch(tx, self._control().count_jobs)
        return postgres_control.queue_counts(rows)

    async def queue_position(self, *, tx: PostgresTx | None, job_id: str) -> QueuePosition | None:
        row = await self._fetchrow(tx, self._control().queue_position, job_id)
        if row is None:
            return None
        extra = JOB_COLUMN_COUNT  # the statement's own columns follow the job's
        return QueuePosition(job=job_record(row), now=row[extra], ahead=int(row[extra + 1]))

    async def schema_sql(self) -> list[str]:
        return migrations.script(self._names)
