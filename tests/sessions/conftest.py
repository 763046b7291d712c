"""Fixtures of the SQLAlchemy tests: a queuert application and an SQLAlchemy engine
on the same database, PostgreSQL (a schema per test) or SQLite (a file per test)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import queuert
from queuert_postgres import PostgresStateAdapter
from queuert_sqlite import SqliteStateAdapter
from tests.postgres.conftest import drop_schema, unique_name
from tests.servers import require_postgres


@dataclass
class Stack:
    """A state adapter, an SQLAlchemy engine on its database, and where the
    application's own ``items`` table lives."""

    backend: str
    state: queuert.StateAdapter[Any]
    engine: AsyncEngine
    items: str


def sqlalchemy_url(postgres_url: str, database: str | None = None) -> str:
    """``postgres_url`` with SQLAlchemy's asyncpg dialect (and another database)."""
    rest = postgres_url.split("://", 1)[1]
    if database is not None:
        rest = rest.rsplit("/", 1)[0] + "/" + database
    return f"postgresql+asyncpg://{rest}"


@pytest_asyncio.fixture(params=["postgresql", "sqlite"])
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    if request.param == "postgresql":
        url = require_postgres()
        schema = unique_name()
        state: queuert.StateAdapter[Any] = await PostgresStateAdapter.connect(url, schema=schema)
        engine = create_async_engine(sqlalchemy_url(url))
        items = f'"{schema}".items'
        create = f"CREATE TABLE {items} (id serial PRIMARY KEY, name text NOT NULL)"
    else:
        path = str(tmp_path / "app.db")
        state = SqliteStateAdapter(path)
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
        items = "items"
        create = f"CREATE TABLE {items} (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"
    await state.migrate()
    async with engine.begin() as conn:
        await conn.execute(text(create))
    try:
        yield Stack(request.param, state, engine, items)
    finally:
        await engine.dispose()
        await state.close()
        if request.param == "postgresql":
            await drop_schema(url, schema)
