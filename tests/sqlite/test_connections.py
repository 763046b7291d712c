"""How the adapter configures SQLite: WAL, busy timeout, autocommit, foreign keys."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from queuert.errors import ConfigurationError
from queuert.records import JobFilter
from queuert_sqlite import SqliteStateAdapter
from tests.sqlite.helpers import new_job


async def pragma(conn: object, name: str) -> object:
    rows = list(await conn.execute_fetchall(f"PRAGMA {name}"))  # type: ignore[attr-defined]
    return rows[0][0]


async def test_the_database_file_is_in_wal_mode(adapter: SqliteStateAdapter, db_path: str) -> None:
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_connect_gives_a_connection_configured_like_the_adapter(db_path: str) -> None:
    state = SqliteStateAdapter(db_path, busy_timeout_ms=1234)
    try:
        async with state.connect() as conn:
            assert conn.isolation_level is None
            assert not conn.in_transaction
            assert await pragma(conn, "journal_mode") == "wal"
            assert await pragma(conn, "busy_timeout") == 1234
            assert await pragma(conn, "foreign_keys") == 1
            assert await pragma(conn, "synchronous") == 1  # NORMAL
    finally:
        await state.close()


async def test_an_awaited_connection_is_the_callers_to_close(adapter: SqliteStateAdapter) -> None:
    conn = await adapter.connect()
    try:
        await conn.execute("BEGIN IMMEDIATE")
        await adapter.create_jobs(tx=conn, jobs=[new_job()])
        await conn.commit()
    finally:
        await conn.close()
    page = await adapter.list_jobs(tx=None, filter=JobFilter(), after=None, limit=10)
    assert len(page.items) == 1


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"table_prefix": "bad-prefix"}, "table_prefix"),
        ({"table_prefix": "x; DROP TABLE y"}, "table_prefix"),
        ({"busy_timeout_ms": 0}, "busy_timeout_ms"),
    ],
)
def test_bad_options_are_rejected_by_name(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        SqliteStateAdapter("jobs.db", **kwargs)  # type: ignore[arg-type]


def test_an_empty_path_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="path"):
        SqliteStateAdapter("")


async def test_close_is_idempotent_and_the_adapter_reopens_when_used_again(
    adapter: SqliteStateAdapter,
) -> None:
    await adapter.create_jobs(tx=None, jobs=[new_job()])
    await adapter.close()
    await adapter.close()
    page = await adapter.list_jobs(tx=None, filter=JobFilter(), after=None, limit=10)
    assert len(page.items) == 1


def wal_bytes(db_path: str) -> int:
    return os.path.getsize(db_path + "-wal")


async def test_the_wal_stays_bounded_under_a_stream_of_small_commits(
    adapter: SqliteStateAdapter, db_path: str
) -> None:
    # Unchecked, each of these commits would add some 20 KB of WAL (30 MB in all).
    for _ in range(1500):
        await adapter.create_jobs(tx=None, jobs=[new_job()])
    assert wal_bytes(db_path) < 12 * 1024 * 1024


async def test_a_database_in_a_missing_directory_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    state = SqliteStateAdapter(tmp_path / "missing" / "jobs.db")
    with pytest.raises(ConfigurationError, match="missing"):
        await state.migrate()
    with pytest.raises(ConfigurationError, match="missing"):
        await state.get_job(tx=None, job_id="x")
    await state.close()
