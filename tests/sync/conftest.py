"""Fixtures of the synchronous API's tests: each backend (a SQLite file, a PostgreSQL
schema) is created and migrated once per module; each test gets a state adapter on
it and opens synchronous connections (sqlite3, psycopg) to it.

Synchronous calls run on a thread of their own (``asyncio.to_thread``), as they do
in a synchronous application, while the test's event loop runs the workers."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import psycopg
import pytest
import pytest_asyncio

from queuert import StateAdapter
from tests.servers import require_postgres

BACKENDS = ["sqlite", "postgres"]


@dataclass
class SyncBackend:
    """A migrated store, the state adapter of this test on it, and synchronous
    connections to it."""

    name: str
    state: StateAdapter[Any]
    path: str | None = None
    url: str | None = None
    schema: str | None = None

    def connect(self) -> Any:
        """A new synchronous connection in the driver's default transaction mode."""
        if self.path is not None:
            return sqlite3.connect(self.path)
        assert self.url is not None
        return psycopg.connect(self.url)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A connection whose transaction commits when the block exits normally and
        rolls back when it raises; closed afterwards."""
        conn = self.connect()
        try:
            yield conn
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()

    @property
    def rows_table(self) -> str:
        """The application's own table in the same database."""
        return "app_rows" if self.schema is None else f'"{self.schema}".app_rows'

    def insert_row(self, conn: Any, key: str) -> None:
        mark = "?" if self.path is not None else "%s"
        conn.execute(f"INSERT INTO {self.rows_table} (key) VALUES ({mark})", (key,))

    def rows(self) -> list[str]:
        with self.transaction() as conn:
            return [r[0] for r in conn.execute(f"SELECT key FROM {self.rows_table}").fetchall()]


def _run(operation: Coroutine[Any, Any, None]) -> None:
    """Run ``operation`` to its end on a loop of its own (a module fixture may be set
    up while a test's loop is running)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, operation).result()


@pytest.fixture(scope="module")
def sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    from queuert_sqlite import SqliteStateAdapter

    path = str(tmp_path_factory.mktemp("sync") / "jobs.db")

    async def migrate() -> None:
        adapter = SqliteStateAdapter(path)
        await adapter.migrate()
        await adapter.close()

    _run(migrate())
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE app_rows (key TEXT NOT NULL)")
    return path


@pytest.fixture(scope="module")
def postgres_schema() -> Iterator[tuple[str, str]]:
    from queuert_postgres import PostgresStateAdapter

    url = require_postgres()
    schema = f"qt_sync_{uuid4().hex[:16]}"

    async def migrate() -> None:
        adapter = await PostgresStateAdapter.connect(url, schema=schema, max_size=2)
        try:
            await adapter.migrate()
        finally:
            await adapter.close()

    _run(migrate())
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{schema}".app_rows (key text NOT NULL)')
    yield url, schema
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest_asyncio.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[SyncBackend]:
    if request.param == "sqlite":
        from queuert_sqlite import SqliteStateAdapter

        path: str = request.getfixturevalue("sqlite_file")
        sqlite_state = SqliteStateAdapter(path)
        yield SyncBackend("sqlite", sqlite_state, path=path)
        await sqlite_state.close()
        return
    from queuert_postgres import PostgresStateAdapter

    url, schema = request.getfixturevalue("postgres_schema")
    pg_state = await PostgresStateAdapter.connect(url, schema=schema, max_size=4)
    yield SyncBackend("postgres", pg_state, url=url, schema=schema)
    await pg_state.close()
