"""The SQLite adapter's statements for control from outside a worker (revoke,
resume, settle, purge), worker records, counts and queue positions.

Functions take the adapter's :class:`~queuert_sqlite.database.Database` and
statements; each write of several statements runs as one unit
(``Database.atomic``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import aiosqlite

from queuert.control_records import (
    QueueCount,
    QueueCounts,
    QueuePosition,
    RevokedChain,
    SettledJob,
    WorkerInfo,
    WorkerRecord,
)
from queuert.errors import AdapterError, ChainEndedError, JobNotFoundError, JobStateError
from queuert.records import JobRecord, JobStatus, Lease, NewJob
from queuert_sqlite.blockers import BlockerStatements, delete_blocker_rows
from queuert_sqlite.clock import from_us, now_us, optional_from_us
from queuert_sqlite.database import Database
from queuert_sqlite.keyed_jobs import set_concurrency_key
from queuert_sqlite.rows import chain_from_row, completed_from_row, job_from_row
from queuert_sqlite.statements import JOB_COLUMNS, Statements, unblocked_queues

Connection = aiosqlite.Connection

_OPEN = "('pending', 'blocked', 'running')"


class ControlStatements:
    """Statement texts over ``{prefix}jobs`` and ``{prefix}workers``."""

    def __init__(self, prefix: str) -> None:
        jobs = f"{prefix}jobs"
        workers = f"{prefix}workers"
        c = JOB_COLUMNS
        self.chain_head = (
            f"SELECT id, status, leased_by, attempt FROM {jobs} "
            "WHERE chain_id = ? AND next_job_id IS NULL"
        )
        self.job_state = f"SELECT id, status, leased_by, attempt FROM {jobs} WHERE id = ?"
        # Parameters: completed_at, updated_at, id.
        self.cancel_job = (
            f"UPDATE {jobs} SET status = 'cancelled', leased_by = NULL, leased_until = NULL, "
            f"completed_at = ?, updated_at = ? WHERE id = ? AND status IN {_OPEN}"
        )
        # Parameters: now (scheduled_at), now (updated_at), id.
        self.resume_job = (
            f"UPDATE {jobs} SET status = 'pending', attempt = 0, scheduled_at = ?, "
            "completed_at = NULL, leased_by = NULL, leased_until = NULL, updated_at = ? "
            "WHERE id = ? AND status IN ('failed', 'cancelled') AND next_job_id IS NULL "
            f"RETURNING {c}"
        )
        # Parameters: output, next_job_id, completed_at, updated_at, id.
        self.settle_job = (
            f"UPDATE {jobs} SET status = 'completed', output = ?, next_job_id = ?, "
            "leased_by = NULL, leased_until = NULL, completed_at = ?, updated_at = ? "
            f"WHERE id = ? AND status IN {_OPEN} RETURNING {c}, {unblocked_queues(prefix)}"
        )
        # Parameters: statuses (JSON array), ended_before, limit.
        self.purge = (
            f"DELETE FROM {jobs} WHERE chain_id IN (SELECT chain_id FROM {jobs} "
            "WHERE next_job_id IS NULL AND completed_at IS NOT NULL "
            "AND status IN (SELECT value FROM json_each(?)) AND completed_at < ? "
            "ORDER BY completed_at LIMIT ?) RETURNING chain_id, id"
        )
        # Parameters: id, host, pid, queues (JSON), concurrency, purges, now, now.
        self.record_worker = (
            f"INSERT INTO {workers} (id, host, pid, queues, concurrency, purges, started_at, "
            "last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "host = excluded.host, pid = excluded.pid, queues = excluded.queues, "
            "concurrency = excluded.concurrency, purges = excluded.purges, "
            "last_seen_at = excluded.last_seen_at"
        )
        self.forget_workers = f"DELETE FROM {workers} WHERE last_seen_at < ?"
        self.remove_worker = f"DELETE FROM {workers} WHERE id = ?"
        self.list_workers = (
            "SELECT id, host, pid, queues, concurrency, purges, started_at, last_seen_at "
            f"FROM {workers} ORDER BY id"
        )
        self.count_jobs = (
            "SELECT queue, status, count(*), "
            "min(CASE WHEN status = 'pending' THEN scheduled_at END) "
            f"FROM {jobs} GROUP BY queue, status ORDER BY queue, status"
        )
        # Parameters: queue, now, scheduled_at, scheduled_at, priority, priority, id.
        self.ahead = (
            f"SELECT count(*) FROM {jobs} WHERE status = 'pending' AND queue = ? "
            "AND scheduled_at <= ? AND (scheduled_at < ? OR (scheduled_at = ? "
            "AND (priority > ? OR (priority = ? AND id < ?))))"
        )


def _lease(row: Sequence[Any]) -> Lease | None:
    if row[1] == "running" and row[2] is not None:
        return Lease(job_id=row[0], owner=row[2], attempt=row[3])
    return None


async def revoke_chain(
    db: Database, sql: Statements, ctl: ControlStatements, tx: Connection | None, chain_id: str
) -> RevokedChain:
    now = now_us()
    async with db.atomic(tx) as conn:
        heads = await db.run(conn, ctl.chain_head, (chain_id,))
        if not heads:
            raise JobNotFoundError(f"no chain has id {chain_id!r}")
        head = heads[0]
        if JobStatus(head[1]).is_terminal:
            raise ChainEndedError(f"chain {chain_id!r} already ended {head[1]}")
        await db.run(conn, ctl.cancel_job, (now, now, head[0]))
        rows = await db.run(conn, sql.get_chain, (chain_id,))
    return RevokedChain(chain=chain_from_row(rows[0]), revoked_lease=_lease(head))


async def resume_job(
    db: Database, sql: Statements, ctl: ControlStatements, tx: Connection | None, job_id: str
) -> JobRecord:
    now = now_us()
    async with db.atomic(tx) as conn:
        rows = await db.run(conn, ctl.resume_job, (now, now, job_id))
        if rows:
            return job_from_row(rows[0])
        found = await db.run(conn, ctl.job_state, (job_id,))
    if not found:
        raise JobNotFoundError(f"no job has id {job_id!r}")
    raise JobStateError(
        f"job {job_id!r} is {found[0][1]}; only a failed or cancelled job that ended its "
        "chain can be retried"
    )


async def settle_job(
    db: Database,
    sql: Statements,
    ctl: ControlStatements,
    tx: Connection | None,
    job_id: str,
    output: str | None,
    next_job: NewJob | None,
    new_row: Any,
) -> SettledJob:
    if (output is None) == (next_job is None):
        raise AdapterError("settle_job takes exactly one of output and next_job")
    now = now_us()
    async with db.atomic(tx) as conn:
        found = await db.run(conn, ctl.job_state, (job_id,))
        if not found:
            raise JobNotFoundError(f"no job has id {job_id!r}")
        state = found[0]
        if JobStatus(state[1]).is_terminal:
            raise ChainEndedError(f"job {job_id!r} already ended {state[1]}")
        created: JobRecord | None = None
        if next_job is not None:
            await db.run(conn, sql.insert_job, new_row(next_job, now))
            if next_job.concurrency_key is not None:
                await db.run(
                    conn,
                    set_concurrency_key(sql.jobs_table),
                    (next_job.concurrency_key, next_job.id),
                )
            created_rows = await db.run(conn, sql.get_job, (next_job.id,))
            created = job_from_row(created_rows[0])
        rows = await db.run(
            conn,
            ctl.settle_job,
            (output, None if next_job is None else next_job.id, now, now, job_id),
        )
    # A job that continued its chain unblocked nothing.
    job = job_from_row(rows[0]) if created is not None else completed_from_row(rows[0])
    return SettledJob(job=job, next_job=created, revoked_lease=_lease(state))


async def delete_chains(
    db: Database,
    sql: Statements,
    blocker_sql: BlockerStatements,
    tx: Connection | None,
    chain_ids: Sequence[str],
) -> int:
    """Delete the chains ``chain_ids`` with their jobs and what those waited on;
    returns how many existed."""
    if not chain_ids:
        return 0
    params = (json.dumps(list(chain_ids)),)
    if tx is None:
        return _chains_in(await db.write(None, sql.delete_chains, params))
    async with db.atomic(tx) as conn:
        rows = await db.run(conn, sql.delete_chains, params)
        await delete_blocker_rows(db, blocker_sql, conn, rows)
    return _chains_in(rows)


def _chains_in(deleted: list[Any]) -> int:
    """How many chains the deleted jobs (rows of chain id, job id) were of."""
    return len({row[0] for row in deleted})


async def purge_chains(
    db: Database,
    ctl: ControlStatements,
    blocker_sql: BlockerStatements,
    tx: Connection | None,
    statuses: Sequence[JobStatus],
    ended_before_us: int,
    limit: int,
) -> int:
    names = json.dumps([JobStatus(s).value for s in statuses])
    params = (names, ended_before_us, limit)
    if tx is None:
        rows = await db.write(None, ctl.purge, params)
    else:
        async with db.atomic(tx) as conn:
            rows = await db.run(conn, ctl.purge, params)
            await delete_blocker_rows(db, blocker_sql, conn, rows)
    return _chains_in(rows)


async def record_worker(
    db: Database, ctl: ControlStatements, tx: Connection | None, worker: WorkerInfo, forget_ms: int
) -> None:
    now = now_us()
    params = (
        worker.id,
        worker.host,
        worker.pid,
        json.dumps(list(worker.queues)),
        worker.concurrency,
        1 if worker.purges else 0,
        now,
        now,
    )
    async with db.atomic(tx) as conn:
        await db.run(conn, ctl.record_worker, params)
        await db.run(conn, ctl.forget_workers, (now - forget_ms * 1000,))


async def list_workers(
    db: Database, ctl: ControlStatements, tx: Connection | None
) -> list[WorkerRecord]:
    rows = await db.read(tx, ctl.list_workers, ())
    return [
        WorkerRecord(
            id=row[0],
            host=row[1],
            pid=row[2],
            queues=tuple(json.loads(row[3])),
            concurrency=row[4],
            started_at=from_us(row[6]),
            last_seen_at=from_us(row[7]),
            purges=bool(row[5]),
        )
        for row in rows
    ]


async def count_jobs(db: Database, ctl: ControlStatements, tx: Connection | None) -> QueueCounts:
    now = now_us()
    rows = await db.read(tx, ctl.count_jobs, ())
    return QueueCounts(
        now=from_us(now),
        counts=[
            QueueCount(
                queue=row[0],
                status=JobStatus(row[1]),
                count=row[2],
                oldest_scheduled_at=optional_from_us(row[3]),
            )
            for row in rows
        ],
    )


async def queue_position(
    db: Database, sql: Statements, ctl: ControlStatements, tx: Connection | None, job_id: str
) -> QueuePosition | None:
    now = now_us()
    rows = await db.read(tx, sql.get_job, (job_id,))
    if not rows:
        return None
    job = job_from_row(rows[0])
    ahead = 0
    if job.status is JobStatus.PENDING:
        at = rows[0][10]
        counted = await db.read(
            tx, ctl.ahead, (job.queue, now, at, at, job.priority, job.priority, job.id)
        )
        ahead = int(counted[0][0])
    return QueuePosition(job=job, now=from_us(now), ahead=ahead)
