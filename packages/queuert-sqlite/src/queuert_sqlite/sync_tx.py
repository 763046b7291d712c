"""A caller's *synchronous* ``sqlite3.Connection`` as the SQLite adapter's transaction
object, for :mod:`queuert.sync`.

The adapter's operations run their statements on a caller's connection through
two calls of aiosqlite's connection, ``execute_fetchall`` and ``executemany``, and
read its ``in_transaction``. :class:`Sqlite3Executor` offers the same over a
``sqlite3.Connection``; its coroutines run the statement before they return, so an
operation given it never suspends and :func:`queuert.drive.drive` runs it on the
calling thread, with the adapter's own statements and row decoding.

Waiting for SQLite's write lock is bounded by the connection's own busy timeout
(``sqlite3.connect(timeout=...)``, 5 seconds by default); a database still busy
then raises :class:`~queuert.errors.TransientStateError`.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from queuert.errors import (
    ForeignTransactionError,
    InvalidTransactionError,
    QueuertError,
    TransactionClosedError,
)
from queuert.ports.state import describe_transaction
from queuert_sqlite.errors import translate

if TYPE_CHECKING:
    import aiosqlite

    from queuert_sqlite.base import SqliteBase

# sqlite3's isolation levels, each with the BEGIN it sends itself.
_BEGIN = {
    "": "BEGIN",
    "DEFERRED": "BEGIN DEFERRED",
    "IMMEDIATE": "BEGIN IMMEDIATE",
    "EXCLUSIVE": "BEGIN EXCLUSIVE",
}


def sync_transaction(adapter: SqliteBase, conn: object) -> aiosqlite.Connection:
    """``conn``, a ``sqlite3.Connection`` on the adapter's database file, inside a
    transaction, as an executor the adapter's operations run on. Recursive triggers
    are enabled on ``conn`` (``PRAGMA recursive_triggers = ON``, as on the adapter's
    own connections): the schema's triggers need them. When sqlite3 manages
    the connection's transactions (its ``isolation_level`` is not ``None``) and none
    is open, the ``BEGIN`` sqlite3 would send before a write is sent now, so reads
    and writes share one transaction that the caller's ``commit()`` or
    ``rollback()`` ends.

    Raises :class:`~queuert.errors.InvalidTransactionError` for another type,
    :class:`~queuert.errors.TransactionClosedError` for a closed connection or one in
    autocommit mode outside a transaction, and
    :class:`~queuert.errors.ForeignTransactionError` for a connection to another
    database file than the adapter's."""
    if not isinstance(conn, sqlite3.Connection):
        raise InvalidTransactionError(
            f"{describe_transaction(conn)} is not a sqlite3.Connection (queuert.sync takes "
            "one with the SQLite adapter)"
        )
    executor = Sqlite3Executor(conn, adapter)
    try:
        theirs = executor.database_file()
        if not _same_file(theirs, adapter.path):
            raise ForeignTransactionError(
                f"{type(adapter).__name__} cannot use {describe_transaction(conn)}: it is "
                f"connected to database {theirs[:200]!r}, another database than the "
                f"adapter's ({adapter.path[:200]!r})"
            )
        # The schema's blocker triggers reach the jobs waiting on the jobs they fail
        # only with recursive triggers, which the adapter's own connections enable.
        executor.enable_recursive_triggers()
        if not conn.in_transaction:
            begin = _BEGIN.get(str(conn.isolation_level).upper())
            if conn.isolation_level is None or begin is None or _autocommit(conn):
                raise TransactionClosedError(
                    f"{describe_transaction(conn)} is in autocommit mode outside a "
                    "transaction (each statement would commit on its own): begin one first"
                )
            conn.execute(begin)
    except sqlite3.ProgrammingError as exc:  # sqlite3's "closed database"
        raise TransactionClosedError(
            f"{describe_transaction(conn)} is closed or cannot be used here: {exc}"
        ) from exc
    except sqlite3.Error as exc:
        raise executor.error(exc) from exc
    # The executor runs the calls the adapter makes on an aiosqlite connection.
    return executor  # type: ignore[return-value]


def _autocommit(conn: sqlite3.Connection) -> bool:
    # Python 3.12's autocommit attribute: True is autocommit whatever isolation_level
    # says (False always has a transaction open, so never reaches here).
    return getattr(conn, "autocommit", None) is True


def _same_file(theirs: str, ours: str) -> bool:
    if not theirs or not ours or ours == ":memory:":
        # An in-memory database lives on one connection and is never shared.
        return False
    try:
        return os.path.samefile(theirs, ours)
    except OSError:
        return False


class Sqlite3Executor:
    """``execute_fetchall``, ``executemany`` and ``in_transaction`` as aiosqlite's
    connection has them, over the caller's ``sqlite3.Connection``; the coroutines
    finish before returning. Rows are tuples whatever row factory the connection
    has; sqlite3 errors pass unchanged (the adapter translates them)."""

    __slots__ = ("_adapter", "_conn")

    def __init__(self, conn: sqlite3.Connection, adapter: SqliteBase) -> None:
        self._conn = conn
        self._adapter = adapter

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    async def execute_fetchall(
        self, sql: str, parameters: Sequence[Any] = ()
    ) -> Iterable[tuple[Any, ...]]:
        cursor = self._conn.cursor()
        cursor.row_factory = None
        try:
            return cursor.execute(sql, parameters).fetchall()
        finally:
            cursor.close()

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> None:
        cursor = self._conn.cursor()
        try:
            cursor.executemany(sql, parameters)
        finally:
            cursor.close()

    def enable_recursive_triggers(self) -> None:
        self._conn.execute("PRAGMA recursive_triggers = ON").close()

    def database_file(self) -> str:
        """The file of the connection's main database, ``""`` for an in-memory one."""
        cursor = self._conn.cursor()
        cursor.row_factory = None
        try:
            rows = cursor.execute("PRAGMA database_list").fetchall()
        finally:
            cursor.close()
        # (seq, name, file)
        return next((str(row[2]) for row in rows if row[1] == "main"), "")

    def error(self, exc: sqlite3.Error) -> QueuertError:
        return translate(exc, self._adapter.path, repr(self._adapter.path))
