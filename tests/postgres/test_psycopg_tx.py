"""A psycopg 3 AsyncConnection (directly, or behind an SQLAlchemy session on the
``postgresql+psycopg`` dialect) as the caller's transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import psycopg
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

import queuert
from queuert_postgres import PostgresStateAdapter


@dataclass
class Item:
    item_id: int


@dataclass
class Done:
    ok: bool


item_chain = queuert.chain("pg-item", input=Item, output=Done)


@pytest_asyncio.fixture
async def app(adapter: PostgresStateAdapter) -> queuert.Queuert[Any]:
    return queuert.Queuert(state=adapter, chains=[item_chain])


@pytest_asyncio.fixture
async def conn(postgres_url: str) -> AsyncIterator[psycopg.AsyncConnection[object]]:
    connection = await psycopg.AsyncConnection.connect(postgres_url)
    yield connection
    await connection.close()


async def test_a_chain_started_on_a_psycopg_connection_commits_with_it(
    app: queuert.Queuert[Any], conn: psycopg.AsyncConnection[object], schema: str
) -> None:
    async with conn.transaction():
        await conn.execute(f'CREATE TABLE "{schema}".items (id serial PRIMARY KEY)')
        handle = await app.enqueue_job_chain(conn, item_chain, Item(1))
        assert await app.get_chain(handle.id, tx=conn) is not None
        assert await app.get_chain(handle.id) is None  # not committed yet
    assert await app.get_chain(handle.id) is not None

    class Rejected(Exception):
        pass

    with pytest.raises(Rejected):
        async with conn.transaction():
            await conn.execute(f'INSERT INTO "{schema}".items DEFAULT VALUES')
            dropped = await app.enqueue_job_chain(conn, item_chain, Item(2))
            raise Rejected
    assert await app.get_chain(dropped.id) is None
    cursor = await conn.execute(f'SELECT count(*) FROM "{schema}".items')
    assert await cursor.fetchone() == (0,)


async def test_reads_cancel_and_delete_on_a_psycopg_connection(
    app: queuert.Queuert[Any], conn: psycopg.AsyncConnection[object]
) -> None:
    handles = await app.enqueue_job_chains(None, item_chain, [Item(1), Item(2)])
    async with conn.transaction():
        page = await app.list_chains(tx=conn)
        assert [c.id for c in page.items] == [h.id for h in handles]
        jobs = await app.list_jobs(tx=conn, chain_id=handles[0].id)
        assert [j.id for j in jobs.items] == [handles[0].id]
        job = await app.get_job(handles[0].id, tx=conn)
        assert job is not None and job.status is queuert.JobStatus.PENDING
        cancelled = await app.cancel_chain(handles[0].id, tx=conn)
        assert cancelled.status is queuert.JobStatus.CANCELLED
        assert await app.delete_chains([handles[1].id], tx=conn) == 1
    chain = await app.get_chain(handles[0].id)
    assert chain is not None and chain.status is queuert.JobStatus.CANCELLED
    assert await app.get_chain(handles[1].id) is None


async def test_a_psycopg_connection_to_another_database_is_refused(
    app: queuert.Queuert[Any], postgres_url: str
) -> None:
    other = postgres_url.rsplit("/", 1)[0] + "/template1"
    async with await psycopg.AsyncConnection.connect(other) as conn:
        with pytest.raises(queuert.ForeignTransactionError, match="another database"):
            await app.enqueue_job_chain(conn, item_chain, Item(1))
    assert (await app.list_chains()).items == []


async def test_an_unmigrated_schema_is_named_through_psycopg(
    pool: asyncpg.Pool[asyncpg.Record], conn: psycopg.AsyncConnection[object], schema: str
) -> None:
    # Typed as the URL-built application is: psycopg connections are not in PostgresTx.
    app: queuert.Queuert[Any] = queuert.Queuert(
        state=PostgresStateAdapter(pool, schema=schema), chains=[item_chain]
    )
    with pytest.raises(queuert.SchemaNotMigratedError, match=schema):
        await app.enqueue_job_chain(conn, item_chain, Item(1))


async def test_a_session_on_the_psycopg_dialect(
    app: queuert.Queuert[Any], postgres_url: str
) -> None:
    engine = create_async_engine("postgresql+psycopg://" + postgres_url.split("://", 1)[1])
    try:
        async with AsyncSession(engine) as session:
            kept = await app.enqueue_job_chain(session, item_chain, Item(1))
            await session.execute(text("SELECT 1"))
            await session.commit()
            dropped = await app.enqueue_job_chain(session, item_chain, Item(2))
            await session.rollback()
    finally:
        await engine.dispose()
    assert await app.get_chain(kept.id) is not None
    assert await app.get_chain(dropped.id) is None
