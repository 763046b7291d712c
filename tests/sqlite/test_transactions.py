"""Transactions, savepoints and the application's own connections."""

from __future__ import annotations

import asyncio

import pytest

from queuert.errors import AdapterError, LeaseLostError
from queuert.records import JobFilter, Lease
from queuert_sqlite import SqliteStateAdapter
from tests.sqlite.helpers import new_job


async def count_jobs(adapter: SqliteStateAdapter) -> int:
    page = await adapter.list_jobs(tx=None, filter=JobFilter(), after=None, limit=1000)
    return len(page.items)


async def test_transaction_commits_on_success_and_rolls_back_on_error(
    adapter: SqliteStateAdapter,
) -> None:
    async with adapter.transaction() as tx:
        assert tx.in_transaction
        await adapter.create_jobs(tx=tx, jobs=[new_job()])
    assert await count_jobs(adapter) == 1

    with pytest.raises(RuntimeError):
        async with adapter.transaction() as tx:
            await adapter.create_jobs(tx=tx, jobs=[new_job(), new_job()])
            raise RuntimeError("boom")
    assert await count_jobs(adapter) == 1


async def test_uncommitted_jobs_are_invisible_to_other_readers(
    adapter: SqliteStateAdapter,
) -> None:
    async with adapter.transaction() as tx:
        await adapter.create_jobs(tx=tx, jobs=[new_job()])
        assert (
            await count_jobs(adapter) == 0
        )  # a reader outside the transaction sees the last commit
        page = await adapter.list_jobs(tx=tx, filter=JobFilter(), after=None, limit=10)
        assert len(page.items) == 1
    assert await count_jobs(adapter) == 1


async def test_the_application_writes_its_rows_and_jobs_in_one_transaction(
    adapter: SqliteStateAdapter,
) -> None:
    async with adapter.connect() as conn:
        await conn.execute("CREATE TABLE images (id INTEGER PRIMARY KEY, name TEXT)")
        async with adapter.transaction(connection=conn) as tx:
            await tx.execute("INSERT INTO images (name) VALUES ('kept')")
            await adapter.create_jobs(tx=tx, jobs=[new_job()])
        with pytest.raises(RuntimeError):
            async with adapter.transaction(connection=conn) as tx:
                await tx.execute("INSERT INTO images (name) VALUES ('dropped')")
                await adapter.create_jobs(tx=tx, jobs=[new_job()])
                raise RuntimeError("rolled back")
        # The application may also run its own BEGIN/COMMIT and pass the connection.
        await conn.execute("BEGIN IMMEDIATE")
        await conn.execute("INSERT INTO images (name) VALUES ('manual')")
        await adapter.create_jobs(tx=conn, jobs=[new_job()])
        await conn.commit()
        names = [row[0] for row in await conn.execute_fetchall("SELECT name FROM images")]
    assert names == ["kept", "manual"]
    assert await count_jobs(adapter) == 2


async def test_a_savepoint_rolls_back_only_its_own_writes(adapter: SqliteStateAdapter) -> None:
    async with adapter.transaction() as tx:
        await adapter.create_jobs(tx=tx, jobs=[new_job()])
        with pytest.raises(RuntimeError):
            async with adapter.savepoint(tx=tx):
                await adapter.create_jobs(tx=tx, jobs=[new_job()])
                raise RuntimeError("inner")
        async with adapter.savepoint(tx=tx), adapter.savepoint(tx=tx):
            await adapter.create_jobs(tx=tx, jobs=[new_job()])
    assert await count_jobs(adapter) == 2


async def test_a_savepoint_recovers_from_a_driver_error(adapter: SqliteStateAdapter) -> None:
    async with adapter.transaction() as tx:
        await adapter.create_jobs(tx=tx, jobs=[new_job()])
        with pytest.raises(Exception, match="syntax"):
            async with adapter.savepoint(tx=tx):
                await tx.execute("THIS IS NOT SQL")
        await adapter.create_jobs(tx=tx, jobs=[new_job()])
    assert await count_jobs(adapter) == 2


async def test_a_write_with_tx_none_inside_the_same_tasks_transaction_fails_fast(
    adapter: SqliteStateAdapter,
) -> None:
    async with adapter.transaction():
        with pytest.raises(AdapterError, match="tx="):
            await adapter.create_jobs(tx=None, jobs=[new_job()])


async def test_a_batch_on_an_autocommit_connection_is_all_or_nothing(
    adapter: SqliteStateAdapter,
) -> None:
    existing = new_job()
    await adapter.create_jobs(tx=None, jobs=[existing])
    async with adapter.connect() as conn:
        with pytest.raises(AdapterError):
            await adapter.create_jobs(tx=conn, jobs=[new_job(), existing, new_job()])
        assert not conn.in_transaction
    assert await count_jobs(adapter) == 1


async def test_a_failed_continuation_leaves_the_callers_transaction_unchanged(
    adapter: SqliteStateAdapter,
) -> None:
    (job,) = await adapter.create_jobs(tx=None, jobs=[new_job()])
    (running,) = await adapter.acquire_jobs(
        tx=None, queues=["q"], limit=1, owner="w", lease_ms=60_000
    )
    occupied = new_job(chain_id=job.chain_id, position=1)
    await adapter.create_jobs(tx=None, jobs=[occupied])
    async with adapter.transaction() as tx:
        with pytest.raises(AdapterError, match="UNIQUE"):
            await adapter.continue_job(
                tx=tx, lease=running.lease, next_job=new_job(chain_id=job.chain_id, position=1)
            )
        assert (await adapter.lock_job(tx=tx, lease=running.lease)).status == "running"
    stale = Lease(job_id=running.id, owner="someone-else", attempt=running.attempt)
    with pytest.raises(LeaseLostError):
        await adapter.continue_job(
            tx=None, lease=stale, next_job=new_job(chain_id=job.chain_id, position=2)
        )
    page = await adapter.list_jobs(
        tx=None, filter=JobFilter(chain_id=job.chain_id), after=None, limit=10
    )
    assert [item.position for item in page.items] == [0, 1]


async def test_a_cancelled_transaction_rolls_back_and_frees_the_writer(
    adapter: SqliteStateAdapter,
) -> None:
    inside = asyncio.Event()

    async def slow_transaction() -> None:
        async with adapter.transaction() as tx:
            await adapter.create_jobs(tx=tx, jobs=[new_job()])
            inside.set()
            # A statement of the application still running on the connection's thread
            # when the task is cancelled.
            await tx.execute(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                "WHERE x < 2000000) SELECT count(*) FROM c"
            )

    task = asyncio.create_task(slow_transaction())
    await asyncio.wait_for(inside.wait(), timeout=5)
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (kept,) = await adapter.create_jobs(tx=None, jobs=[new_job()])
    page = await adapter.list_jobs(tx=None, filter=JobFilter(), after=None, limit=10)
    assert [job.id for job in page.items] == [kept.id]


async def test_a_task_cancelled_while_waiting_for_its_turn_leaves_no_trace(
    adapter: SqliteStateAdapter,
) -> None:
    async with adapter.transaction() as tx:
        waiting = asyncio.create_task(adapter.create_jobs(tx=None, jobs=[new_job()]))
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await adapter.create_jobs(tx=tx, jobs=[new_job()])
    assert await count_jobs(adapter) == 1
    await adapter.create_jobs(tx=None, jobs=[new_job()])
    assert await count_jobs(adapter) == 2


async def test_a_completion_with_tx_none_inside_the_same_tasks_transaction_fails_fast(
    adapter: SqliteStateAdapter,
) -> None:
    await adapter.create_jobs(tx=None, jobs=[new_job()])
    (job,) = await adapter.acquire_jobs(tx=None, queues=["q"], limit=1, owner="w", lease_ms=60_000)
    async with adapter.transaction():
        with pytest.raises(AdapterError, match="tx="):
            # Completions are written together by another task; it must not wait for us.
            async with asyncio.timeout(10):
                await adapter.complete_job(tx=None, lease=job.lease, output="1")
