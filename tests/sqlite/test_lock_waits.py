"""A leased transaction (claim, finalize) that waits for the database write lock
longer than the busy timeout, because another process holds it, keeps waiting
while its lease holds: its callback has not run, so giving up would cost the job
an attempt for nothing."""

from __future__ import annotations

import asyncio
import sqlite3

from queuert.errors import LeaseLostError
from queuert_sqlite import SqliteStateAdapter
from tests.sqlite.helpers import new_job

BUSY_TIMEOUT_MS = 100


async def test_a_finalize_waits_for_the_write_lock_while_its_lease_holds(db_path: str) -> None:
    adapter = SqliteStateAdapter(db_path, busy_timeout_ms=BUSY_TIMEOUT_MS)
    await adapter.migrate()
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        await adapter.create_jobs(tx=None, jobs=[new_job()])
        (job,) = await adapter.acquire_jobs(
            tx=None, queues=["q"], limit=1, owner="w", lease_ms=60_000
        )
        other.execute("BEGIN IMMEDIATE")  # another process takes the write lock

        async def finalize() -> None:
            async with adapter.leased_transaction(lease=job.lease, lock=True) as tx:
                await adapter.complete_locked_job(tx=tx, lease=job.lease, output='"ok"')

        task = asyncio.create_task(finalize())
        # Hold the lock for several busy timeouts, then let go.
        await asyncio.sleep(BUSY_TIMEOUT_MS * 4 / 1000)
        assert not task.done()
        other.execute("COMMIT")
        async with asyncio.timeout(10):
            await task
        done = await adapter.get_job(tx=None, job_id=job.id)
        assert done is not None and done.status == "completed" and done.attempt == 1
    finally:
        other.close()
        await adapter.close()


async def test_a_finalize_waiting_for_the_lock_stops_when_its_lease_is_gone(
    db_path: str,
) -> None:
    adapter = SqliteStateAdapter(db_path, busy_timeout_ms=BUSY_TIMEOUT_MS)
    await adapter.migrate()
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        await adapter.create_jobs(tx=None, jobs=[new_job()])
        (job,) = await adapter.acquire_jobs(
            tx=None, queues=["q"], limit=1, owner="w", lease_ms=60_000
        )
        other.execute("BEGIN IMMEDIATE")
        # The other process takes the job over (as a reap and a new lease would).
        other.execute(
            f"UPDATE {adapter.table_prefix}jobs SET leased_by = 'other' WHERE id = ?", (job.id,)
        )
        other.execute("COMMIT")
        other.execute("BEGIN IMMEDIATE")
        async with asyncio.timeout(10):
            try:
                async with adapter.leased_transaction(lease=job.lease, lock=True):
                    raise AssertionError("the block ran without the lease")
            except LeaseLostError:
                pass
    finally:
        other.execute("ROLLBACK")
        other.close()
        await adapter.close()
