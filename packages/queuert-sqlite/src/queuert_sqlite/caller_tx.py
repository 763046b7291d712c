"""The caller's transaction object, turned into the aiosqlite connection the SQLite
adapter runs in: an aiosqlite connection as it is, or the aiosqlite connection
behind an SQLAlchemy ``AsyncSession`` / ``AsyncConnection`` (``sqlite+aiosqlite``)
of the adapter's database file, inside the session's transaction.

The application's connection has none of the settings the adapter gives its own
connections; the one the schema needs, recursive triggers, is enabled on it before
the adapter's statements run (:func:`enable_recursive_triggers`)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import weakref
from typing import TYPE_CHECKING

import aiosqlite

from queuert import sqlalchemy_tx
from queuert.errors import (
    AdapterError,
    QueuertError,
    TransactionClosedError,
    TransientStateError,
)
from queuert_sqlite.errors import translate

if TYPE_CHECKING:
    from queuert_sqlite.base import SqliteBase

_TIMEOUT = 30.0
"""Seconds reading a session's database file and beginning its transaction may take."""

# The file behind each driver connection, read once per connection.
_files: weakref.WeakKeyDictionary[aiosqlite.Connection, str] = weakref.WeakKeyDictionary()


async def caller_connection(adapter: SqliteBase, tx: object) -> aiosqlite.Connection:
    """``tx`` when it is not an SQLAlchemy object; otherwise its aiosqlite connection,
    in a transaction (``BEGIN IMMEDIATE`` now when none is open: SQLite's driver
    begins one only at the first write, and SQLAlchemy commits or rolls back
    whatever is open). Raises :class:`~queuert.errors.ForeignTransactionError` for
    another dialect or another database file than the adapter's."""
    if not sqlalchemy_tx.is_sqlalchemy(tx):
        return tx  # type: ignore[return-value]
    name = type(adapter).__name__
    try:
        async with asyncio.timeout(_TIMEOUT):
            conn = await sqlalchemy_tx.async_connection(tx)  # type: ignore[arg-type]
            driver = await sqlalchemy_tx.driver_connection(conn)
            if not isinstance(driver, aiosqlite.Connection):
                raise sqlalchemy_tx.refuse(
                    tx,
                    name,
                    f"its dialect is {sqlalchemy_tx.dialect_name(conn)}, not sqlite+aiosqlite",
                )
            theirs = await _file_of(driver)
            if not _same_file(theirs, adapter.path):
                raise sqlalchemy_tx.refuse(
                    tx,
                    name,
                    f"it is bound to database {theirs[:200]!r}, another database than "
                    f"the adapter's ({adapter.path[:200]!r})",
                )
            if not driver.in_transaction:
                await driver.execute("BEGIN IMMEDIATE")
    except QueuertError:
        raise
    except TimeoutError as exc:
        raise TransientStateError(f"beginning the transaction of {name} timed out") from exc
    except sqlite3.Error as exc:
        raise translate(exc, adapter.path, repr(adapter.path)) from exc
    except Exception as exc:
        raise AdapterError(
            f"the session's connection failed: {type(exc).__name__}: {exc}"[:500]
        ) from exc
    return driver


async def _file_of(driver: aiosqlite.Connection) -> str:
    known = _files.get(driver)
    if known is None:
        rows = await driver.execute_fetchall("PRAGMA database_list")
        # (seq, name, file): the main database's file, "" for an in-memory one.
        known = next((str(row[2]) for row in rows if row[1] == "main"), "")
        _files[driver] = known
    return known


def _same_file(theirs: str, ours: str) -> bool:
    if not theirs or not ours or ours == ":memory:":
        # In-memory databases live on one connection and are never shared.
        return False
    try:
        return os.path.samefile(theirs, ours)
    except OSError:
        return False


async def enable_recursive_triggers(adapter: SqliteBase, conn: aiosqlite.Connection) -> None:
    """Enable recursive triggers on the caller's connection ``conn``
    (``PRAGMA recursive_triggers = ON``, as on the adapter's own connections), and
    leave them on. The schema's blocker triggers reach the jobs waiting on the jobs
    they fail only with them. SQLite takes the setting inside an open transaction
    too, for the statements prepared after it.

    Raises :class:`~queuert.errors.TransientStateError` when the connection does not
    answer in time, :class:`~queuert.errors.TransactionClosedError` when it closed."""
    name = type(adapter).__name__
    try:
        async with asyncio.timeout(_TIMEOUT):
            await conn.execute_fetchall("PRAGMA recursive_triggers = ON")
    except TimeoutError as exc:
        raise TransientStateError(f"configuring the connection for {name} timed out") from exc
    except ValueError as exc:  # aiosqlite's "no active connection"
        raise TransactionClosedError(f"the connection given to {name} is closed: {exc}") from exc
    except sqlite3.Error as exc:
        raise translate(exc, adapter.path, repr(adapter.path)) from exc
