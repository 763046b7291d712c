"""Opening aiosqlite connections configured the way the adapter needs them."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Generator
from types import TracebackType
from typing import Any

import aiosqlite
from queuert.errors import ConfigurationError, TransientStateError

MEMORY = ":memory:"
MIN_SQLITE_VERSION = (3, 35, 0)  # UPDATE/INSERT/DELETE ... RETURNING


async def open_connection(path: str, *, busy_timeout_ms: int) -> aiosqlite.Connection:
    """Open a connection in autocommit mode (``isolation_level=None``: transactions
    begin only where ``BEGIN`` is issued), with the busy timeout, WAL journal for
    files, ``synchronous=NORMAL`` and foreign keys enforced.

    Raises :class:`~queuert.errors.TransientStateError` when the database stays
    locked past the busy timeout while the connection is set up.
    """
    if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
        raise ConfigurationError(
            f"SQLite {sqlite3.sqlite_version} is too old for queuert-sqlite; "
            f"it needs {'.'.join(map(str, MIN_SQLITE_VERSION))} or later"
        )
    conn = await aiosqlite.connect(
        path,
        isolation_level=None,
        timeout=busy_timeout_ms / 1000,
        cached_statements=256,
    )
    try:
        await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        if path != MEMORY:
            # WAL lets readers run alongside the single writer; NORMAL skips the fsync
            # at each commit (WAL stays consistent, a power cut may lose the last commits).
            rows = list(await conn.execute_fetchall("PRAGMA journal_mode = WAL"))
            if not rows or str(rows[0][0]).lower() != "wal":
                raise ConfigurationError(
                    f"SQLite database {path!r} could not be switched to WAL journal mode"
                )
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.OperationalError as error:
        await conn.close()
        raise TransientStateError(
            f"SQLite database {path!r} could not be configured: {error}"
        ) from error
    except BaseException:
        await conn.close()
        raise
    return conn


class ConnectContext:
    """An opening connection: ``await`` it for a connection you close yourself, or use
    ``async with`` to have it closed when the block exits."""

    def __init__(self, path: str, busy_timeout_ms: int) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: aiosqlite.Connection | None = None

    def __await__(self) -> Generator[Any, None, aiosqlite.Connection]:
        return open_connection(self._path, busy_timeout_ms=self._busy_timeout_ms).__await__()

    async def __aenter__(self) -> aiosqlite.Connection:
        self._conn = await open_connection(self._path, busy_timeout_ms=self._busy_timeout_ms)
        return self._conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.shield(conn.close())
