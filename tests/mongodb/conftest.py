"""Fixtures of the MongoDB tests: every test gets a database of its own, dropped
afterwards, so tests can run in parallel against one replica set."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from queuert_mongodb import MongoStateAdapter
from tests.mongodb.server import drop_database, require_mongodb, unique_database


@pytest.fixture
def mongodb_url() -> str:
    return require_mongodb()


@pytest_asyncio.fixture
async def database(mongodb_url: str) -> AsyncIterator[str]:
    """A database name that does not exist yet; dropped after the test."""
    name = unique_database()
    yield name
    await drop_database(mongodb_url, name)


@pytest_asyncio.fixture
async def adapter(mongodb_url: str, database: str) -> AsyncIterator[MongoStateAdapter]:
    """A migrated adapter on a fresh database."""
    adapter = await MongoStateAdapter.connect(mongodb_url, database=database)
    try:
        await adapter.migrate()
        yield adapter
    finally:
        await adapter.close()
