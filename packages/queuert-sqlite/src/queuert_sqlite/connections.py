"""Opening SQLite connections configured the way the adapter needs them.

Two kinds exist. Connections for the application (:class:`ConnectContext`)
are plain aiosqlite connections: every statement runs on the connection's own
thread and lock waits use SQLite's busy timeout there. The adapter's own
connections (:class:`Link`) run its statements directly on the event loop's
thread, because each takes microseconds while a hop to a worker thread and
back costs far more; they never wait inside SQLite (busy timeout 0): callers
wait for locks with :func:`retry_busy`, which sleeps without blocking the loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Generator
from types import TracebackType
from typing import Any, TypeVar

import aiosqlite

from queuert.errors import ConfigurationError, TransientStateError

T = TypeVar("T")

MEMORY = ":memory:"
MIN_SQLITE_VERSION = (3, 35, 0)  # UPDATE/INSERT/DELETE ... RETURNING

_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_WAL_SIZE_LIMIT = 64 * 1024 * 1024
_FIRST_PAUSE_S = 0.0005
_MAX_PAUSE_S = 0.02


def is_busy(error: sqlite3.Error) -> bool:
    """Whether ``error`` means the database was locked by another connection; the
    statement then changed nothing and may be run again."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return "database is locked" in str(error)


async def retry_busy(attempt: Callable[[], T], *, deadline: float, path: str) -> T:
    """Call ``attempt`` until it does not fail with a busy database, sleeping between
    tries (without blocking the event loop) until the loop time ``deadline``; then
    raise :class:`~queuert.errors.TransientStateError`. ``attempt`` must change
    nothing when it fails busy: a ``BEGIN IMMEDIATE``, or one statement outside a
    transaction."""
    loop = asyncio.get_running_loop()
    pause = _FIRST_PAUSE_S
    while True:
        try:
            return attempt()
        except sqlite3.OperationalError as error:
            if not is_busy(error):
                raise
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TransientStateError(
                    f"SQLite database {path!r} is busy: another connection kept it locked "
                    f"past the busy timeout ({error})"
                ) from error
        await asyncio.sleep(min(pause, remaining))
        pause = min(pause * 2, _MAX_PAUSE_S)


def _check_version() -> None:
    if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
        raise ConfigurationError(
            f"SQLite {sqlite3.sqlite_version} is too old for queuert-sqlite; "
            f"it needs {'.'.join(map(str, MIN_SQLITE_VERSION))} or later"
        )


def _cannot_open(path: str, error: sqlite3.Error) -> ConfigurationError:
    return ConfigurationError(f"cannot open SQLite database {path!r}: {error}")


def _check_wal(rows: list[Any], path: str) -> None:
    if not rows or str(rows[0][0]).lower() != "wal":
        raise ConfigurationError(
            f"SQLite database {path!r} could not be switched to WAL journal mode"
        )


# WAL lets readers run alongside the single writer; synchronous=NORMAL then skips the
# fsync at each commit (the database stays consistent, a power cut may lose the last
# commits). Switching a file to WAL needs it to itself, and SQLite reports busy at
# once instead of waiting, so the switch is retried within the busy timeout.
# Recursive triggers: a blocker chain's failure reaches the jobs waiting on the jobs it
# fails (migration 3).
_SETTINGS = (
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA recursive_triggers = ON",
)


async def open_raw(path: str, *, busy_timeout_ms: int) -> sqlite3.Connection:
    """A connection for statements run on the event loop's thread: autocommit mode,
    busy timeout 0, WAL for files, ``synchronous=NORMAL``, foreign keys enforced.
    Automatic WAL checkpoints are off, because they would run inside a commit on the
    event loop's thread; the owner checkpoints on the connection's own thread.

    Raises :class:`~queuert.errors.TransientStateError` when the database stays
    locked past the busy timeout while the connection is set up."""
    _check_version()
    deadline = asyncio.get_running_loop().time() + busy_timeout_ms / 1000
    try:
        raw: sqlite3.Connection = sqlite3.connect(path, **_RAW_OPTIONS)
    except sqlite3.Error as error:
        raise _cannot_open(path, error) from error
    try:
        await _configure_raw(raw, path, deadline)
    except BaseException:
        raw.close()
        raise
    return raw


_RAW_OPTIONS: dict[str, Any] = {
    "isolation_level": None,
    "check_same_thread": False,
    "timeout": 0,
    "cached_statements": 512,
}


async def _configure_raw(raw: sqlite3.Connection, path: str, deadline: float) -> None:
    """The settings of :func:`open_raw`; raises
    :class:`~queuert.errors.TransientStateError` when they cannot be applied."""
    try:
        if path != MEMORY:
            rows = await retry_busy(
                lambda: raw.execute("PRAGMA journal_mode = WAL").fetchall(),
                deadline=deadline,
                path=path,
            )
            _check_wal(rows, path)
            raw.execute("PRAGMA wal_autocheckpoint = 0")
            # A WAL that a large batch grew is cut back once it restarts.
            raw.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT}")
        for pragma in _SETTINGS:
            raw.execute(pragma)
    except sqlite3.Error as error:
        raise TransientStateError(
            f"SQLite database {path!r} could not be configured: {error}"
        ) from error


def _capturing(opened: list[sqlite3.Connection]) -> type[sqlite3.Connection]:
    """A ``sqlite3.connect`` factory (its documented ``factory`` argument) that
    appends each connection it builds to ``opened``."""

    class Captured(sqlite3.Connection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            opened.append(self)

    return Captured


class Link:
    """One of the adapter's own connections: ``raw`` for statements run on the event
    loop's thread, ``conn`` (the same connection behind aiosqlite) to hand out as a
    transaction object."""

    def __init__(self, raw: sqlite3.Connection, conn: aiosqlite.Connection) -> None:
        self.raw = raw
        self.conn = conn

    @classmethod
    async def open(cls, path: str, *, busy_timeout_ms: int) -> Link:
        """Open and configure a connection (see :func:`open_raw`) with
        :func:`aiosqlite.connect`, which passes its keyword arguments to
        :func:`sqlite3.connect`; a ``factory`` of ours hands back the
        :class:`sqlite3.Connection` it opens (on aiosqlite's thread)."""
        _check_version()
        deadline = asyncio.get_running_loop().time() + busy_timeout_ms / 1000
        opened: list[sqlite3.Connection] = []
        try:
            conn = await aiosqlite.connect(path, factory=_capturing(opened), **_RAW_OPTIONS)
        except sqlite3.Error as error:
            raise _cannot_open(path, error) from error
        try:
            (raw,) = opened
            await _configure_raw(raw, path, deadline)
        except BaseException:
            await asyncio.shield(conn.close())
            raise
        return cls(raw, conn)

    async def close(self) -> None:
        """Close the connection, after statements already sent through aiosqlite."""
        await self.conn.close()


async def open_connection(path: str, *, busy_timeout_ms: int) -> aiosqlite.Connection:
    """An aiosqlite connection in autocommit mode (``isolation_level=None``:
    transactions begin only where ``BEGIN`` is issued), with the busy timeout, WAL
    journal for files, ``synchronous=NORMAL`` and foreign keys enforced.

    Raises :class:`~queuert.errors.TransientStateError` when the database stays
    locked past the busy timeout while the connection is set up.
    """
    _check_version()
    deadline = asyncio.get_running_loop().time() + busy_timeout_ms / 1000
    try:
        conn = await aiosqlite.connect(
            path, isolation_level=None, timeout=busy_timeout_ms / 1000, cached_statements=256
        )
    except sqlite3.Error as error:
        raise _cannot_open(path, error) from error
    try:
        await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        if path != MEMORY:
            _check_wal(await _wal_waiting(conn, deadline), path)
        for pragma in _SETTINGS:
            await conn.execute(pragma)
    except sqlite3.Error as error:
        await conn.close()
        raise TransientStateError(
            f"SQLite database {path!r} could not be configured: {error}"
        ) from error
    except BaseException:
        await conn.close()
        raise
    return conn


async def _wal_waiting(conn: aiosqlite.Connection, deadline: float) -> list[Any]:
    loop = asyncio.get_running_loop()
    pause = _FIRST_PAUSE_S
    while True:
        try:
            return list(await conn.execute_fetchall("PRAGMA journal_mode = WAL"))
        except sqlite3.OperationalError as error:
            if not is_busy(error) or loop.time() + pause > deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, _MAX_PAUSE_S)


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
