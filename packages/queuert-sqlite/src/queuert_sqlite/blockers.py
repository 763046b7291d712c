"""Blocked jobs on SQLite: the statements of the blocker operations.

Unblocking and failing happen in triggers of the jobs table (migration 3), in
the statement that ends a blocker chain, whichever operation ends it. A job is
made to wait inside a write transaction, which holds the database write lock:
no blocker chain can end between the read of its status and the commit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from queuert.blockers import initial_wait
from queuert.records import BlockerRecord, JobStatus
from queuert_sqlite.statements import JOB_COLUMNS

if TYPE_CHECKING:
    import aiosqlite

    from queuert_sqlite.database import Database

_STATUSES = {status.value: status for status in JobStatus}


class BlockerStatements:
    """The SQL of the blocker operations for one table prefix."""

    def __init__(self, prefix: str) -> None:
        jobs = f"{prefix}jobs"
        blockers = f"{prefix}job_blockers"
        self.chain_heads = (
            f"SELECT chain_id, status FROM {jobs} "
            "WHERE next_job_id IS NULL AND chain_id IN (SELECT value FROM json_each(?))"
        )
        self.insert_blocker = (
            f"INSERT INTO {blockers} (job_id, position, blocker_chain_id) VALUES (?, ?, ?)"
        )
        # Parameters: status, blockers_left, error, completed_at, updated_at,
        # run_on_blocker_failure, job ids.
        self.set_waiting = (
            f"UPDATE {jobs} SET status = ?, blockers_left = ?, error = ?, completed_at = ?, "
            "updated_at = ?, run_on_blocker_failure = ?, has_blockers = 1 "
            "WHERE id IN (SELECT value FROM json_each(?)) "
            f"RETURNING {JOB_COLUMNS}"
        )
        self.get_blockers = (
            f"SELECT b.blocker_chain_id, l.chain_name, l.status, l.output FROM {blockers} b "
            f"JOIN {jobs} l ON l.chain_id = b.blocker_chain_id AND l.next_job_id IS NULL "
            "WHERE b.job_id = ? ORDER BY b.position"
        )
        self.dependent_chains = (
            f"SELECT DISTINCT j.chain_id FROM {blockers} b JOIN {jobs} j ON j.id = b.job_id "
            "WHERE b.blocker_chain_id IN (SELECT value FROM json_each(?1)) "
            "AND j.chain_id NOT IN (SELECT value FROM json_each(?1)) ORDER BY j.chain_id"
        )
        self.delete_of_jobs = (
            f"DELETE FROM {blockers} WHERE job_id IN (SELECT value FROM json_each(?))"
        )


def waiting_state(
    heads: Sequence[Any], chain_ids: Sequence[str], now: int, run_on_failure: bool
) -> tuple[str, int, str | None, int | None]:
    """What jobs waiting on ``chain_ids`` start as, from the chains' last jobs
    ``heads`` (chain id, status): status, blockers left, error JSON, completed_at
    (see :func:`queuert.blockers.initial_wait`, which raises for a missing chain)."""
    status_of = {row[0]: row[1] for row in heads}
    status, left, error = initial_wait(status_of, chain_ids, run_on_failure)
    if error is not None:
        return status.value, left, error.to_json(), now
    return status.value, left, None, None


def blocker_rows(job_ids: Sequence[str], chain_ids: Sequence[str]) -> list[tuple[Any, ...]]:
    return [
        (job_id, position, chain_id)
        for job_id in job_ids
        for position, chain_id in enumerate(chain_ids)
    ]


def blocker_record(row: Sequence[Any]) -> BlockerRecord:
    return BlockerRecord(
        chain_id=row[0], chain_name=row[1], status=_STATUSES[row[2]], output=row[3]
    )


def ids_json(ids: Sequence[str]) -> str:
    return json.dumps(list(ids))


async def delete_blocker_rows(
    db: Database,
    sql: BlockerStatements,
    tx: aiosqlite.Connection,
    deleted: Sequence[Any],
) -> None:
    """Delete the blocker rows of the jobs ``deleted`` (rows of chain id and job id)
    just deleted in ``tx``. The foreign key's cascade deletes them on the adapter's
    own connections, which enforce foreign keys; a connection of the application's
    may not, and SQLite cannot start enforcing them inside a transaction."""
    if deleted:
        await db.run(tx, sql.delete_of_jobs, (ids_json([row[1] for row in deleted]),))
