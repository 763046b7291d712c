"""The state backends every end-to-end scenario runs on, behind one small interface.

A scenario asks for ``backend`` and gets a fresh, migrated store (a temp SQLite
file, a PostgreSQL schema of its own, or a new in-memory store) plus the
application's own ``app_writes`` table in the same database, written inside
the transactions queuert hands to finalize callbacks.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from uuid import uuid4

import aiosqlite
import asyncpg
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession

import queuert
from queuert import StateAdapter, urls
from queuert.adapters.memory_state import MemoryTransaction
from tests.mongodb.server import (
    drop_database,
    require_mongodb,
    unique_database,
    with_database,
)
from tests.servers import require_postgres

BACKENDS = ["memory", "sqlite", "postgres", "mongodb"]


@dataclass
class Backend:
    """One fresh store and the application's table in it."""

    name: str
    state: StateAdapter[Any]
    url: str | None
    """URL another process can open the same store with (``None`` for memory)."""
    _pg_url: str | None = None
    _schema: str | None = None
    _base_url: str | None = None
    _database: str | None = None
    _memory_rows: list[str] = field(default_factory=list)

    @property
    def multi_process(self) -> bool:
        return self.state.capabilities.multi_process

    async def app_write(self, tx: Any, key: str) -> None:
        """The application's own write inside ``tx`` (commits or rolls back with it)."""
        await app_write(tx, key, schema=self._schema, memory_rows=self._memory_rows)

    async def app_writes(self) -> Counter[str]:
        """How many times each key was written by committed transactions."""
        if self.name == "memory":
            return Counter(self._memory_rows)
        if self.name == "sqlite":
            from queuert_sqlite import SqliteStateAdapter

            assert isinstance(self.state, SqliteStateAdapter)
            async with (
                self.state.connect() as conn,
                conn.execute("SELECT key FROM app_writes") as cur,
            ):
                return Counter(row[0] for row in await cur.fetchall())
        if self.name == "mongodb":
            return await _mongodb_app_writes(self._base_url, self._database)
        pg = await asyncpg.connect(self._pg_url)
        try:
            rows = await pg.fetch(f'SELECT key FROM "{self._schema}".app_writes')
        finally:
            await pg.close()
        return Counter(row[0] for row in rows)

    async def open_another(self) -> StateAdapter[Any]:
        """A second adapter on the same store (the same one for memory)."""
        if self.url is None:
            return self.state
        return await urls.state_from_url(self.url)

    async def close(self) -> None:
        await self.state.close()
        if self.name == "mongodb":
            await _drop_mongodb_database(self._base_url, self._database)
        if self.name == "postgres":
            conn = await asyncpg.connect(self._pg_url)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{self._schema}" CASCADE')
            finally:
                await conn.close()


async def app_write(
    tx: Any, key: str, *, schema: str | None = None, memory_rows: list[str] | None = None
) -> None:
    """Write ``key`` to the application's table through the driver's transaction."""
    if isinstance(tx, MemoryTransaction):
        assert memory_rows is not None
        memory_rows.append(key)
        tx.on_rollback(lambda: memory_rows.remove(key))
    elif isinstance(tx, aiosqlite.Connection):
        await tx.execute("INSERT INTO app_writes (key) VALUES (?)", (key,))
    elif isinstance(tx, AsyncClientSession):
        # The database the state URL names, through the application's session.
        await tx.client.get_default_database()["app_writes"].insert_one({"key": key}, session=tx)
    else:
        await tx.execute(f'INSERT INTO "{schema}".app_writes (key) VALUES ($1)', key)


def schema_of(url: str) -> str | None:
    """The PostgreSQL schema named in a state URL's query."""
    from urllib.parse import parse_qs, urlsplit

    values = parse_qs(urlsplit(url).query).get("schema")
    return values[0] if values else None


async def make_backend(name: str, tmp_path: Path, *, postgres_url: str | None = None) -> Backend:
    """A fresh store on backend ``name``; PostgreSQL ones are made on the server
    of ``postgres_url`` (default: the shared test server)."""
    if name == "memory":
        state: StateAdapter[Any] = queuert.MemoryStateAdapter()
        await state.migrate()
        return Backend(name, state, None)
    if name == "sqlite":
        path = tmp_path / f"jobs-{uuid4().hex[:8]}.db"
        url = f"sqlite:///{path}"
        state = await urls.state_from_url(url)
        await state.migrate()
        async with state.connect() as conn:  # type: ignore[attr-defined]
            await conn.execute("CREATE TABLE app_writes (key TEXT NOT NULL)")
        return Backend(name, state, url)
    if name == "mongodb":
        return await _make_mongodb_backend()
    base = postgres_url or require_postgres()
    schema = f"e2e_{uuid4().hex[:12]}"
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}{urlencode({'schema': schema})}"
    state = await urls.state_from_url(url)
    await state.migrate()
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f'CREATE TABLE "{schema}".app_writes (key TEXT NOT NULL)')
    finally:
        await conn.close()
    return Backend(name, state, url, _pg_url=base, _schema=schema)


async def _make_mongodb_backend() -> Backend:
    base = require_mongodb()
    database = unique_database("e2e")
    url = with_database(base, database)
    state = await urls.state_from_url(url)
    await state.migrate()
    client: AsyncMongoClient[Any] = AsyncMongoClient(base)
    try:
        # Created up front: a transaction need not create the collection it writes.
        await client[database].create_collection("app_writes")
    finally:
        await client.close()
    return Backend("mongodb", state, url, _base_url=base, _database=database)


async def _mongodb_app_writes(base: str | None, database: str | None) -> Counter[str]:
    assert base is not None and database is not None
    client: AsyncMongoClient[Any] = AsyncMongoClient(base)
    try:
        documents = await client[database]["app_writes"].find({}).to_list(None)
    finally:
        await client.close()
    return Counter(document["key"] for document in documents)


async def _drop_mongodb_database(base: str | None, database: str | None) -> None:
    assert base is not None and database is not None
    await drop_database(base, database)


@asynccontextmanager
async def open_backend(
    name: str, tmp_path: Path, *, postgres_url: str | None = None
) -> AsyncIterator[Backend]:
    """A fresh store on backend ``name``, closed (and dropped) on exit."""
    backend = await make_backend(name, tmp_path, postgres_url=postgres_url)
    try:
        yield backend
    finally:
        await backend.close()


def env_with_pythonpath() -> dict[str, str]:
    """Environment for worker subprocesses: the repository root importable."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env
