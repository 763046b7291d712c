"""The PostgreSQL adapter's control operations of several statements (revoke,
resume, settle) and the conversion of their rows; the SQL is in
:mod:`queuert_postgres.control`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from queuert.control_records import (
    QueueCount,
    QueueCounts,
    RevokedChain,
    SettledJob,
    WorkerRecord,
)
from queuert.errors import AdapterError, ChainEndedError, JobNotFoundError, JobStateError
from queuert.records import JobRecord, JobStatus, Lease, NewJob
from queuert_postgres.connections import PostgresTx
from queuert_postgres.control import ControlStatements
from queuert_postgres.keyed_jobs import keyed_job_statements
from queuert_postgres.rows import chain_record, completed_record, job_record

if TYPE_CHECKING:
    from queuert_postgres.admin_ops import AdminOps

# A head continued while this statement waited for its lock is not seen by the
# statement's snapshot; a new statement sees the new head.
_HEAD_READS = 5


def _lease(row: asyncpg.Record) -> Lease | None:
    if row[1] == "running" and row[2] is not None:
        return Lease(job_id=row[0], owner=row[2], attempt=row[3])
    return None


async def _locked_head(
    adapter: AdminOps, ctl: ControlStatements, conn: PostgresTx, chain_id: str
) -> asyncpg.Record:
    for _ in range(_HEAD_READS):
        head = await adapter._fetchrow(conn, ctl.chain_head, chain_id)
        if head is not None:
            return head
        exists = await adapter._fetchrow(conn, ctl.sql.get_chain, chain_id)
        if exists is None:
            break
    raise JobNotFoundError(f"no chain has id {chain_id!r}")


async def revoke_chain(
    adapter: AdminOps, ctl: ControlStatements, tx: PostgresTx | None, chain_id: str
) -> RevokedChain:
    async with adapter._unit(tx) as conn:
        head = await _locked_head(adapter, ctl, conn, chain_id)
        if JobStatus(head[1]).is_terminal:
            raise ChainEndedError(f"chain {chain_id!r} already ended {head[1]}")
        await adapter._fetch(conn, ctl.cancel_job, head[0])
        chain = await adapter._fetchrow(conn, ctl.sql.get_chain, chain_id)
    assert chain is not None
    return RevokedChain(chain=chain_record(chain), revoked_lease=_lease(head))


async def resume_job(
    adapter: AdminOps, ctl: ControlStatements, tx: PostgresTx | None, job_id: str
) -> JobRecord:
    async with adapter._unit(tx) as conn:
        state = await adapter._fetchrow(conn, ctl.job_state, job_id)
        if state is None:
            raise JobNotFoundError(f"no job has id {job_id!r}")
        row = await adapter._fetchrow(conn, ctl.resume_job, job_id)
        if row is None:
            raise JobStateError(
                f"job {job_id!r} is {state[1]}; only a failed or cancelled job that ended its "
                "chain can be retried"
            )
    return job_record(row)


async def settle_job(
    adapter: AdminOps,
    ctl: ControlStatements,
    tx: PostgresTx | None,
    job_id: str,
    output: str | None,
    next_job: NewJob | None,
    new_job_args: Callable[[NewJob], Sequence[Any]],
) -> SettledJob:
    if (output is None) == (next_job is None):
        raise AdapterError("settle_job takes exactly one of output and next_job")
    async with adapter._unit(tx) as conn:
        state = await adapter._fetchrow(conn, ctl.job_state, job_id)
        if state is None:
            raise JobNotFoundError(f"no job has id {job_id!r}")
        if JobStatus(state[1]).is_terminal:
            raise ChainEndedError(f"job {job_id!r} already ended {state[1]}")
        created: JobRecord | None = None
        if next_job is not None:
            inserted = await adapter._fetchrow(conn, ctl.insert_job, *new_job_args(next_job))
            assert inserted is not None
            created = job_record(inserted)
            if next_job.concurrency_key is not None:
                keyed = keyed_job_statements(adapter._sql).set_concurrency_key
                await adapter._fetch(conn, keyed, next_job.id, next_job.concurrency_key)
        row = await adapter._fetchrow(
            conn, ctl.settle_job, job_id, output, None if next_job is None else next_job.id
        )
    assert row is not None  # the job is locked and open
    return SettledJob(job=completed_record(row), next_job=created, revoked_lease=_lease(state))


def worker_record(row: asyncpg.Record) -> WorkerRecord:
    return WorkerRecord(
        id=row[0],
        host=row[1],
        pid=row[2],
        queues=tuple(row[3]),
        concurrency=row[4],
        started_at=row[6],
        last_seen_at=row[7],
        purges=bool(row[5]),
    )


def queue_counts(rows: Sequence[asyncpg.Record]) -> QueueCounts:
    return QueueCounts(
        now=rows[0][4],
        counts=[
            QueueCount(
                queue=r[0], status=JobStatus(r[1]), count=int(r[2]), oldest_scheduled_at=r[3]
            )
            for r in rows
            if r[0] is not None
        ],
    )
