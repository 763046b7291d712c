"""The PostgreSQL adapter and its pool at the edges: a job's end is written inside the
finalize transaction (not deferred to its COMMIT), connections the server dropped
are not handed out, a task holding a transaction that asks for a second connection
is told so instead of waiting forever, every wait for the pool is bounded, and an
application sharing the adapter's pool neither leaks session state into the
adapter nor waits for connections the adapter keeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

import queuert
from queuert.errors import AdapterError, QueuertError, TransientStateError
from queuert_postgres import PostgresStateAdapter
from tests.postgres.conftest import unique_name
from tests.postgres.helpers import continuation, new_job
from tests.waiting import eventually

wide = queuert.chain("pool-growth", input=int, output=int)


@pytest_asyncio.fixture
async def named(postgres_url: str, schema: str) -> AsyncIterator[tuple[PostgresStateAdapter, str]]:
    """An adapter with a pool of up to three connections, all under one
    application_name (so a test can terminate them), and that name."""
    name = unique_name("pool")
    adapter = await PostgresStateAdapter.connect(
        postgres_url,
        schema=schema,
        min_size=1,
        max_size=3,
        server_settings={"application_name": name},
    )
    await adapter.migrate()
    yield adapter, name
    await adapter.close()


async def terminate_all(postgres_url: str, name: str) -> None:
    """Terminate every backend named ``name`` and wait until the server has ended them
    (the pool may open new ones meanwhile: those live)."""
    killer = await asyncpg.connect(postgres_url)
    try:
        pids = [
            r[0]
            for r in await killer.fetch(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1", name
            )
        ]
        await killer.execute("SELECT pg_terminate_backend(p) FROM unnest($1::int[]) AS p", pids)

        async def gone() -> bool:
            left = await killer.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])",
                pids,
            )
            return bool(left == 0)

        await eventually(gone, message="terminated backends still listed")
    finally:
        await killer.close()


async def open_connections(adapter: PostgresStateAdapter, n: int) -> None:
    """Have the pool open ``n`` connections (transactions side by side), then idle."""
    inside = 0
    all_inside = asyncio.Event()

    async def hold() -> None:
        nonlocal inside
        async with adapter.transaction() as tx:
            assert await tx.fetchval("SELECT 1") == 1
            inside += 1
            if inside == n:
                all_inside.set()
            await all_inside.wait()

    async with asyncio.timeout(10):
        await asyncio.gather(*(hold() for _ in range(n)))


async def test_a_finalizes_job_end_is_written_inside_its_transaction(
    named: tuple[PostgresStateAdapter, str], schema: str
) -> None:
    # The job's end must be a statement of the transaction itself: had it been left to
    # travel with COMMIT, a COMMIT sent another way would commit the application's
    # writes without it, and the job would run again.
    adapter, _ = named
    table = f'"{schema}".app_rows'
    async with adapter.transaction() as tx:
        await tx.execute(f"CREATE TABLE {table} (job_id text)")
    await adapter.create_jobs(tx=None, jobs=[new_job(), new_job()])
    ending, continuing = await adapter.acquire_jobs(
        tx=None, queues=["q"], limit=2, owner="w", lease_ms=60_000
    )
    async with adapter.leased_transaction(lease=ending.lease, lock=True) as tx:
        await tx.execute(f"INSERT INTO {table} VALUES ($1)", ending.id)
        await adapter.complete_locked_job(tx=tx, lease=ending.lease, output='"done"')
        seen = await adapter.get_job(tx=tx, job_id=ending.id)
        assert seen is not None and seen.status == "completed"
    nxt = continuation(continuing)
    async with adapter.leased_transaction(lease=continuing.lease, lock=True) as tx:
        await tx.execute(f"INSERT INTO {table} VALUES ($1)", continuing.id)
        await adapter.continue_locked_job(tx=tx, lease=continuing.lease, next_job=nxt)
        assert await adapter.get_job(tx=tx, job_id=nxt.id) is not None
    async with adapter.transaction() as tx:
        rows = sorted(r[0] for r in await tx.fetch(f"SELECT job_id FROM {table}"))
    assert rows == sorted([ending.id, continuing.id])
    done = await adapter.get_job(tx=None, job_id=ending.id)
    assert done is not None and done.status == "completed" and done.output == '"done"'
    moved = await adapter.get_job(tx=None, job_id=continuing.id)
    assert moved is not None and moved.next_job_id == nxt.id


async def test_connections_the_server_dropped_while_idle_cost_at_most_a_transient_error(
    named: tuple[PostgresStateAdapter, str], postgres_url: str
) -> None:
    adapter, name = named
    app = queuert.Queuert(state=adapter, chains=[wide])
    await open_connections(adapter, 3)
    await terminate_all(postgres_url, name)
    # Through the application's API, which retries transient errors: nothing fails.
    for _ in range(4):
        assert await app.get_job("none") is None
    await terminate_all(postgres_url, name)
    # Directly: a transaction that meets a dropped connection (which the pool had not
    # noticed yet) fails as a transient error, once per dropped connection at most.
    failures = 0
    for _ in range(6):
        try:
            async with adapter.transaction() as tx:
                assert await tx.fetchval("SELECT 1") == 1
        except TransientStateError:
            failures += 1
    assert failures <= 3
    await open_connections(adapter, 3)


async def test_a_connection_lost_inside_a_transaction_is_a_transient_error(
    named: tuple[PostgresStateAdapter, str], postgres_url: str
) -> None:
    adapter, name = named
    with pytest.raises(TransientStateError):
        async with adapter.transaction() as tx:
            await adapter.get_job(tx=tx, job_id="none")
            await terminate_all(postgres_url, name)
            await adapter.get_job(tx=tx, job_id="none")
    with pytest.raises(TransientStateError):
        async with adapter.transaction():
            await terminate_all(postgres_url, name)
    # Through the application's API (which retries a transient error once the pool
    # hands out a dropped connection it had not noticed yet): it works again.
    app = queuert.Queuert(state=adapter, chains=[wide])
    assert await app.get_job("none") is None


@pytest.mark.parametrize("second", ["statement", "transaction"])
async def test_a_task_holding_the_only_connection_is_told_instead_of_waiting(
    postgres_url: str, schema: str, second: str
) -> None:
    adapter = await PostgresStateAdapter.connect(
        postgres_url, schema=schema, min_size=1, max_size=1
    )
    try:
        await adapter.migrate()
        async with asyncio.timeout(10), adapter.transaction():
            with pytest.raises(AdapterError, match="tx="):
                if second == "statement":
                    await adapter.get_job(tx=None, job_id="none")
                else:
                    async with adapter.transaction():
                        pass
        assert await adapter.get_job(tx=None, job_id="none") is None
    finally:
        await adapter.close()


async def test_waiting_for_a_connection_of_the_pool_is_bounded(
    postgres_url: str, schema: str
) -> None:
    adapter = await PostgresStateAdapter.connect(
        postgres_url, schema=schema, min_size=1, max_size=1, acquire_timeout=0.2
    )
    try:
        await adapter.migrate()
        holding = asyncio.Event()
        done = asyncio.Event()

        async def hold() -> None:
            async with adapter.transaction():
                holding.set()
                await done.wait()

        holder = asyncio.create_task(hold())
        try:
            await holding.wait()
            async with asyncio.timeout(10):
                with pytest.raises(TransientStateError, match="became free"):
                    await adapter.get_job(tx=None, job_id="none")
        finally:
            done.set()
            await holder
        assert await adapter.get_job(tx=None, job_id="none") is None
    finally:
        await adapter.close()


async def test_session_state_the_application_leaves_on_the_shared_pool_is_reset(
    postgres_url: str, schema: str
) -> None:
    adapter = await PostgresStateAdapter.connect(
        postgres_url, schema=schema, min_size=1, max_size=1
    )
    try:
        await adapter.migrate()
        async with adapter.pool.acquire() as conn:
            await conn.execute("SET default_transaction_read_only = on")
        (created,) = await adapter.create_jobs(tx=None, jobs=[new_job()])
        async with adapter.transaction() as tx:
            await adapter.create_jobs(tx=tx, jobs=[new_job()])
        assert await adapter.get_job(tx=None, job_id=created.id) == created
    finally:
        await adapter.close()


async def test_the_adapter_keeps_no_connection_an_application_sharing_the_pool_waits_for(
    postgres_url: str, schema: str
) -> None:
    adapter = await PostgresStateAdapter.connect(
        postgres_url, schema=schema, min_size=1, max_size=2
    )
    try:
        await adapter.migrate()
        await adapter.create_jobs(tx=None, jobs=[new_job()])
        await asyncio.gather(*(adapter.get_job(tx=None, job_id="none") for _ in range(4)))
        async with (
            asyncio.timeout(10),
            adapter.pool.acquire() as first,
            adapter.pool.acquire() as second,
        ):
            assert await first.fetchval("SELECT 1") == await second.fetchval("SELECT 1") == 1
    finally:
        await adapter.close()


async def test_one_failing_completion_does_not_fail_the_others_of_its_batch(
    named: tuple[PostgresStateAdapter, str],
) -> None:
    adapter, _ = named
    await adapter.create_jobs(tx=None, jobs=[new_job() for _ in range(3)])
    jobs = await adapter.acquire_jobs(tx=None, queues=["q"], limit=3, owner="w", lease_ms=60_000)
    outputs = ['"ok"', "not json", '"also ok"']
    # Submitted together, so that they share one batch.
    results = await asyncio.gather(
        *(
            adapter.complete_job(tx=None, lease=job.lease, output=output)
            for job, output in zip(jobs, outputs, strict=True)
        ),
        return_exceptions=True,
    )
    assert isinstance(results[1], QueuertError)
    for job, output in ((jobs[0], '"ok"'), (jobs[2], '"also ok"')):
        done = await adapter.get_job(tx=None, job_id=job.id)
        assert done is not None and done.status == "completed" and done.output == output
    left = await adapter.get_job(tx=None, job_id=jobs[1].id)
    assert left is not None and left.status == "running"


async def test_a_pool_of_default_size_grows_with_the_workers_concurrency(
    postgres_url: str, schema: str
) -> None:
    adapter = await PostgresStateAdapter.connect(postgres_url, schema=schema)
    concurrency = adapter.pool.get_max_size() + 5
    app = queuert.Queuert(state=adapter, chains=[wide])
    await app.migrate()
    worker = app.worker(concurrency=concurrency, poll_interval=0.05)
    inside = 0
    all_inside = asyncio.Event()

    @worker.handler(wide)
    async def run(job: queuert.Job[int], ctx: queuert.JobContext[Any, int]) -> Any:
        async def commit(tx: Any, enqueue_job: queuert.EnqueueJob[int]) -> int:
            # Every job holds its finalize transaction until all of them do.
            nonlocal inside
            inside += 1
            if inside == concurrency:
                all_inside.set()
            await all_inside.wait()
            return job.input

        return await ctx.finalize(commit)

    try:
        handles = await app.enqueue_job_chains(None, wide, list(range(concurrency)))
        async with worker:
            outputs = [await app.wait_for_chain(h, timeout=20) for h in handles]
        assert outputs == list(range(concurrency))
        assert adapter.pool.get_max_size() >= concurrency
    finally:
        await app.close()


async def test_closing_after_a_connection_ended_mid_statement_returns(
    postgres_url: str, schema: str
) -> None:
    adapter = await PostgresStateAdapter.connect(postgres_url, schema=schema, max_size=2)
    try:
        await adapter.migrate()
        with pytest.raises(TransientStateError):
            async with adapter.transaction() as tx:
                pid = await tx.fetchval("SELECT pg_backend_pid()")
                await adapter.pool.execute("SELECT pg_terminate_backend($1)", pid)
                await adapter.get_job(tx=tx, job_id="none")
    finally:
        # Some asyncpg versions wait forever to close such a pool gracefully.
        async with asyncio.timeout(30):
            await adapter.close()
