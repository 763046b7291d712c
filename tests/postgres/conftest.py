"""Fixtures of the PostgreSQL tests: every test module or test gets a schema of its own,
dropped afterwards, so tests can run in parallel against one server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import uuid4

import asyncpg
import pytest
import pytest_asyncio

from queuert_postgres import PostgresStateAdapter
from tests.servers import require_postgres


def unique_name(prefix: str = "qt") -> str:
    """A schema or channel prefix no other test uses."""
    return f"{prefix}_{uuid4().hex[:16]}"


async def drop_schema(url: str, schema: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
def postgres_url() -> str:
    return require_postgres()


@pytest_asyncio.fixture
async def schema(postgres_url: str) -> AsyncIterator[str]:
    """A schema name that does not exist yet; dropped after the test."""
    name = unique_name()
    yield name
    await drop_schema(postgres_url, name)


@pytest_asyncio.fixture
async def pool(postgres_url: str) -> AsyncIterator[asyncpg.Pool[asyncpg.Record]]:
    pool = await asyncpg.create_pool(postgres_url, min_size=1, max_size=4)
    yield pool
    try:
        # asyncpg before 0.32 may wait forever to close a pool one of whose
        # connections the server ended in the middle of a statement.
        await asyncio.wait_for(pool.close(), 10)
    except TimeoutError:
        pool.terminate()


@pytest_asyncio.fixture
async def adapter(
    pool: asyncpg.Pool[asyncpg.Record], schema: str
) -> AsyncIterator[PostgresStateAdapter]:
    """A migrated adapter in a fresh schema, over the shared ``pool``."""
    adapter = PostgresStateAdapter(pool, schema=schema)
    await adapter.migrate()
    yield adapter
    await adapter.close()
