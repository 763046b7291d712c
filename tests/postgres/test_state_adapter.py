"""PostgreSQL-specific behaviour of the state adapter: configuration, URLs, pool
ownership, error translation and races that need real row locks."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from queuert.errors import ConfigurationError, LeaseLostError, TransientStateError
from queuert.ids import new_id
from queuert.records import JobFilter
from queuert.urls import state_from_url
from queuert_postgres import PostgresStateAdapter
from tests.postgres.helpers import continuation, new_job


@pytest.mark.parametrize(
    "schema", ["Queuert", "bad-name", "1jobs", "", "x" * 64, 'q"; DROP TABLE jobs; --']
)
async def test_invalid_schema_is_rejected_by_name(
    pool: asyncpg.Pool[asyncpg.Record], schema: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        PostgresStateAdapter(pool, schema=schema)
    assert repr(schema) in str(caught.value)


@pytest.mark.parametrize("prefix", ["Blue_", "a-b", "p" * 50])
async def test_invalid_table_prefix_is_rejected_by_name(
    pool: asyncpg.Pool[asyncpg.Record], prefix: str
) -> None:
    with pytest.raises(ConfigurationError, match="table prefix"):
        PostgresStateAdapter(pool, table_prefix=prefix)


async def test_from_url_reads_schema_and_prefix(postgres_url: str, schema: str) -> None:
    separator = "&" if "?" in postgres_url else "?"
    for scheme_url in (postgres_url, postgres_url.replace("postgresql://", "postgres://", 1)):
        url = f"{scheme_url}{separator}schema={schema}&table_prefix=app_&max_size=2"
        adapter = await state_from_url(url)
        try:
            assert isinstance(adapter, PostgresStateAdapter)
            assert (adapter.schema, adapter.table_prefix) == (schema, "app_")
            await adapter.migrate()
            (job,) = await adapter.create_jobs(tx=None, jobs=[new_job()])
            assert await adapter.get_job(tx=None, job_id=job.id) is not None
        finally:
            await adapter.close()


async def test_from_url_rejects_a_bad_schema_before_connecting() -> None:
    with pytest.raises(ConfigurationError, match="Bad-Schema"):
        await state_from_url("postgresql://nobody@127.0.0.1:1/db?schema=Bad-Schema")


async def test_from_url_rejects_a_bad_pool_size(postgres_url: str) -> None:
    separator = "&" if "?" in postgres_url else "?"
    with pytest.raises(ConfigurationError, match="max_size"):
        await state_from_url(f"{postgres_url}{separator}max_size=zero")


async def test_unreachable_server_is_transient() -> None:
    with pytest.raises(TransientStateError):
        await PostgresStateAdapter.connect("postgresql://postgres@127.0.0.1:1/postgres")


async def test_close_leaves_a_pool_it_did_not_create_open(
    pool: asyncpg.Pool[asyncpg.Record], schema: str
) -> None:
    adapter = PostgresStateAdapter(pool, schema=schema)
    await adapter.close()
    await adapter.close()
    assert await pool.fetchval("SELECT 1") == 1


async def test_close_closes_its_own_pool(postgres_url: str, schema: str) -> None:
    adapter = await PostgresStateAdapter.connect(postgres_url, schema=schema)
    await adapter.close()
    await adapter.close()
    assert adapter.pool.is_closing()


async def test_transaction_is_the_callers_asyncpg_connection(
    adapter: PostgresStateAdapter,
) -> None:
    job = new_job()
    with pytest.raises(RuntimeError):
        async with adapter.transaction() as tx:
            await adapter.create_jobs(tx=tx, jobs=[job])
            assert await tx.fetchval("SELECT 1") == 1
            raise RuntimeError("roll back")
    assert await adapter.get_job(tx=None, job_id=job.id) is None

    async with adapter.pool.acquire() as conn, conn.transaction():
        await adapter.create_jobs(tx=conn, jobs=[job])
    assert await adapter.get_job(tx=None, job_id=job.id) is not None


async def test_lost_connection_is_transient(adapter: PostgresStateAdapter) -> None:
    with pytest.raises(TransientStateError):
        async with adapter.transaction() as tx:
            pid = await tx.fetchval("SELECT pg_backend_pid()")
            await adapter.pool.execute("SELECT pg_terminate_backend($1)", pid)
            await adapter.get_job(tx=tx, job_id=new_id())
    # The pool replaces the dead connection.
    assert await adapter.get_job(tx=None, job_id=new_id()) is None


async def test_deadlock_is_transient(adapter: PostgresStateAdapter) -> None:
    first, second = await adapter.create_jobs(tx=None, jobs=[new_job(), new_job()])
    both_locked = asyncio.Barrier(2)
    table = f'"{adapter.schema}".jobs'

    async def lock(a: str, b: str) -> None:
        async with adapter.transaction() as tx:
            await tx.execute(f"SELECT 1 FROM {table} WHERE id = $1 FOR UPDATE", a)
            await both_locked.wait()
            await adapter.delete_chains(tx=tx, chain_ids=[b])

    results = await asyncio.gather(
        lock(first.id, second.id), lock(second.id, first.id), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1
    assert isinstance(errors[0], TransientStateError)


async def test_concurrent_continuations_of_one_job_commit_once(
    adapter: PostgresStateAdapter, postgres_url: str
) -> None:
    (created,) = await adapter.create_jobs(tx=None, jobs=[new_job()])
    (job,) = await adapter.acquire_jobs(tx=None, queues=["q"], limit=1, owner="w", lease_ms=60_000)
    first_continued = asyncio.Event()

    async def finalize(wait_for_other: bool) -> None:
        async with adapter.transaction() as tx:
            if wait_for_other:
                await first_continued.wait()
            await adapter.continue_job(tx=tx, lease=job.lease, next_job=continuation(job))
            if not wait_for_other:
                first_continued.set()
                await asyncio.sleep(0.05)  # keep the row locked while the other waits

    results = await asyncio.gather(finalize(False), finalize(True), return_exceptions=True)

    assert results[0] is None
    assert isinstance(results[1], LeaseLostError)
    chain = await adapter.get_chain(tx=None, chain_id=created.chain_id)
    assert chain is not None and chain.last_queue == "q:next"
    page = await adapter.list_jobs(
        tx=None, filter=JobFilter(chain_id=job.chain_id), after=None, limit=10
    )
    assert [j.position for j in page.items] == [0, 1]
