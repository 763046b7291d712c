"""A psycopg connection to another database than the adapter's is refused, even when
that database holds the same migrated schema, and nothing is written to either."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import uuid4

import psycopg
import pytest
from psycopg import sql

import queuert
from queuert.sync import SyncClient
from queuert_postgres import PostgresStateAdapter
from queuert_postgres.sync_state import from_url
from queuert_postgres.urls import database_name
from tests.sync.conftest import SyncBackend


@dataclass
class Note:
    text: str


note_chain = queuert.chain("sync-foreign-note", input=Note, output=Note)


def with_database(url: str, database: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + database


@pytest.fixture
async def other_database(backend: SyncBackend) -> AsyncIterator[str]:
    """The URL of another database on the same server, with the backend's schema
    migrated in it too."""
    if backend.url is None:
        pytest.skip("PostgreSQL only")
    assert backend.schema is not None
    name = f"qt_sync_other_{uuid4().hex[:12]}"
    admin = await psycopg.AsyncConnection.connect(backend.url, autocommit=True)
    try:
        await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = with_database(backend.url, name)
        other = await PostgresStateAdapter.connect(url, schema=backend.schema, max_size=1)
        try:
            await other.migrate()
        finally:
            await other.close()
        yield url
    finally:
        await admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        await admin.close()


async def count_jobs(url: str, schema: str) -> int:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(
            sql.SQL("SELECT count(*) FROM {}.jobs").format(sql.Identifier(schema))
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("adapter_from", ["connect", "url"])
async def test_a_connection_to_another_database_is_refused(
    backend: SyncBackend, other_database: str, adapter_from: str
) -> None:
    assert backend.url is not None and backend.schema is not None
    state = (
        backend.state
        if adapter_from == "connect"
        else from_url(f"{backend.url}?schema={backend.schema}")
    )
    client = SyncClient(queuert.Queuert(state=state, chains=[note_chain]))
    before = await count_jobs(backend.url, backend.schema)

    def start() -> None:
        with psycopg.connect(other_database) as conn:
            client.enqueue_job_chain(conn, note_chain, Note("lost"))
            conn.commit()

    with pytest.raises(queuert.ForeignTransactionError, match="another database"):
        await asyncio.to_thread(start)
    assert await count_jobs(other_database, backend.schema) == 0
    assert await count_jobs(backend.url, backend.schema) == before


@pytest.mark.parametrize(
    ("dsn", "name"),
    [
        ("postgresql://u@h:5432/app", "app"),
        ("postgres://u@h/my%20db?sslmode=disable", "my db"),
        # The driver's defaults decide: nothing to compare with.
        ("postgresql://u@h:5432", None),
        ("postgresql://u@h/", None),
        ("postgresql://u@h/app?database=other", None),
        ("host=h dbname=app", None),
    ],
)
def test_the_database_a_url_names(dsn: str, name: str | None) -> None:
    assert database_name(dsn) == name
