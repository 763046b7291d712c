"""The adapter's statements over a caller's *synchronous* psycopg 3 ``Connection``,
for :mod:`queuert.sync` (the ``psycopg`` extra).

:class:`PsycopgSyncExecutor` offers what the adapter's operations call on their
transaction object (``fetch``, ``fetchrow``, ``transaction``) as asyncpg's connection
has them. Its coroutines run the statement through psycopg's blocking raw cursor
(which takes the statements' ``$1`` parameters unchanged) before they return, so an
operation given this executor never suspends and :func:`queuert.drive.drive` runs
it on the calling thread: one set of statements and row decoders serves asyncpg,
psycopg's ``AsyncConnection`` and psycopg's ``Connection``.

Each statement may take :data:`STATEMENT_TIMEOUT` seconds; then it is cancelled
through psycopg's ``cancel_safe()`` (the server stops it and the call raises
:class:`~queuert.errors.TransientStateError`; the caller's transaction is then
aborted and must be rolled back).
"""

from __future__ import annotations

import heapq
import itertools
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import pq
from psycopg.rows import tuple_row

from queuert.errors import (
    ForeignTransactionError,
    InvalidTransactionError,
    QueuertError,
    TransactionClosedError,
)
from queuert.ports.state import describe_transaction
from queuert_postgres.connections import PostgresTx
from queuert_postgres.psycopg_executor import translate
from queuert_postgres.urls import database_name

if TYPE_CHECKING:
    from queuert_postgres.state import PostgresStateAdapter

STATEMENT_TIMEOUT = 30.0
"""Seconds one statement on the caller's connection may take before it is cancelled."""

_OPEN = (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR)


def sync_transaction(adapter: PostgresStateAdapter, conn: object) -> PostgresTx:
    """``conn``, a psycopg ``Connection`` that holds or will begin a transaction, as an
    executor the adapter's operations run on. Raises
    :class:`~queuert.errors.InvalidTransactionError` for another type and
    :class:`~queuert.errors.TransactionClosedError` for a closed connection or one in
    autocommit mode outside a ``conn.transaction()`` block, and
    :class:`~queuert.errors.ForeignTransactionError` for one connected to another
    database than the one the adapter's URL names. Sends nothing."""
    if not isinstance(conn, psycopg.Connection):
        raise InvalidTransactionError(
            f"{describe_transaction(conn)} is not a psycopg Connection (queuert.sync takes "
            "a psycopg 3 Connection with the PostgreSQL adapter)"
        )
    if conn.closed or (conn.autocommit and conn.info.transaction_status not in _OPEN):
        raise TransactionClosedError(
            f"{describe_transaction(conn)} is closed, or in autocommit mode outside a "
            "transaction (each statement would commit on its own)"
        )
    if conn.info.transaction_status is pq.TransactionStatus.INERROR:
        raise TransactionClosedError(
            f"{describe_transaction(conn)} is in a failed transaction (an earlier statement "
            "raised): roll it back first"
        )
    _check_database(adapter, conn)
    # The executor runs the calls asyncpg's connection offers.
    return PsycopgSyncExecutor(conn, schema=adapter.schema)  # type: ignore[return-value]


def _check_database(adapter: PostgresStateAdapter, conn: psycopg.Connection[Any]) -> None:
    """Refuse ``conn`` when it is connected to another database than the one the
    adapter's URL names. Compared by name, on the client (libpq knows the name the
    connection opened): the synchronous API has no connection of the adapter's to
    ask the server with. Another server's database of the same name is not told
    apart; an adapter whose URL names no database checks nothing."""
    ours = database_name(adapter._dsn) if adapter._dsn is not None else None
    theirs = conn.info.dbname
    if ours is not None and theirs != ours:
        raise ForeignTransactionError(
            f"{type(adapter).__name__} cannot use {describe_transaction(conn)}: it is "
            f"connected to database {theirs[:200]!r}, another database than the "
            f"adapter's ({ours[:200]!r})"
        )


class PsycopgSyncExecutor:
    """``fetch``, ``fetchrow`` and ``transaction`` as asyncpg's connection has them,
    over the caller's psycopg ``Connection`` and in its current transaction (psycopg
    begins one at the first statement unless the connection is in autocommit mode).
    The coroutines finish before returning; rows are tuples, read by position."""

    __slots__ = ("_conn", "_schema")

    def __init__(self, conn: psycopg.Connection[Any], *, schema: str) -> None:
        self._conn = conn
        self._schema = schema

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return self._run(sql, args, one=False)  # type: ignore[return-value]

    async def fetchrow(self, sql: str, *args: Any) -> tuple[Any, ...] | None:
        return self._run(sql, args, one=True)  # type: ignore[return-value]

    def is_open(self) -> bool:
        conn = self._conn
        return not conn.closed and (not conn.autocommit or conn.info.transaction_status in _OPEN)

    def transaction(self) -> PsycopgSyncSavepoint:
        """A savepoint inside the caller's transaction, for the adapter's operations
        of several statements."""
        return PsycopgSyncSavepoint(self)

    def _run(
        self, sql: str, args: Sequence[Any], *, one: bool
    ) -> list[tuple[Any, ...]] | tuple[Any, ...] | None:
        conn = self._conn
        # Rows by position whatever row factory the application gave its connection.
        cursor = psycopg.RawCursor(conn, row_factory=tuple_row)
        alarm = watchdog.arm(STATEMENT_TIMEOUT, conn.cancel_safe)
        try:
            with cursor:
                # Prepared as the connection's prepare_threshold says (the application's
                # choice: None behind a transaction-pooling PgBouncer), as its own queries.
                cursor.execute(sql, list(args) or None)
                if cursor.description is None:
                    return None if one else []
                if one:
                    row = cursor.fetchone()
                    return None if row is None else _utc(row)
                return [_utc(row) for row in cursor.fetchall()]
        except QueuertError:
            raise
        except (psycopg.Error, OSError) as exc:
            raise translate(exc, schema=self._schema) from exc
        finally:
            watchdog.disarm(alarm)


def _utc(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """``row`` with its timestamps in UTC, as asyncpg returns them (psycopg gives them
    in the session's time zone): records read through either driver are equal and
    print alike."""
    if not any(isinstance(value, datetime) for value in row):
        return row
    return tuple(
        value.astimezone(UTC) if isinstance(value, datetime) and value.tzinfo is not None else value
        for value in row
    )


class PsycopgSyncSavepoint:
    """A savepoint of the caller's transaction with the ``start`` / ``commit`` /
    ``rollback`` of asyncpg's transaction object: plain SAVEPOINT statements, which
    never commit the caller's transaction (see
    :class:`~queuert_postgres.psycopg_executor.PsycopgSavepoint`)."""

    __slots__ = ("_executor",)

    def __init__(self, executor: PsycopgSyncExecutor) -> None:
        self._executor = executor

    async def start(self) -> None:
        await self._executor.fetch("SAVEPOINT queuert_operation")

    async def commit(self) -> None:
        await self._executor.fetch("RELEASE SAVEPOINT queuert_operation")

    async def rollback(self) -> None:
        await self._executor.fetch("ROLLBACK TO SAVEPOINT queuert_operation")
        await self._executor.fetch("RELEASE SAVEPOINT queuert_operation")


class _Watchdog:
    """One daemon thread calling each armed callback whose deadline passed, unless
    it was disarmed first: a timeout for blocking statements without a thread per
    statement."""

    def __init__(self) -> None:
        self._reset()
        # A process forked from this one (a pre-forking server) has none of its
        # threads: it starts afresh.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Condition()
        self._alarms: list[tuple[float, int, Callable[[], object]]] = []
        self._cancelled: set[int] = set()
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._firing: int | None = None
        # When the thread wakes up next by itself (inf: only when notified).
        self._wake_at = math.inf

    def arm(self, seconds: float, callback: Callable[[], object]) -> int:
        with self._lock:
            alarm = next(self._ids)
            deadline = time.monotonic() + seconds
            heapq.heappush(self._alarms, (deadline, alarm, callback))
            if self._thread is None or not self._thread.is_alive():
                self._wake_at = math.inf
                self._thread = threading.Thread(
                    target=self._watch, name="queuert-psycopg-timeouts", daemon=True
                )
                self._thread.start()
            elif deadline < self._wake_at:
                # Only an alarm due before the thread's next look needs to wake it: with
                # one timeout for every statement, that is rarely the case.
                self._lock.notify_all()
            return alarm

    def disarm(self, alarm: int) -> None:
        """Cancel ``alarm``; when its callback is running, return once it is done (so
        it cannot reach what the caller does next)."""
        with self._lock:
            while self._firing == alarm:
                self._lock.wait()
            if any(entry[1] == alarm for entry in self._alarms):
                self._cancelled.add(alarm)
            self._drop_cancelled()

    def _drop_cancelled(self) -> None:
        while self._alarms and self._alarms[0][1] in self._cancelled:
            self._cancelled.discard(heapq.heappop(self._alarms)[1])

    def _watch(self) -> None:
        while True:
            with self._lock:
                self._drop_cancelled()
                if not self._alarms:
                    self._wake_at = math.inf
                    self._lock.wait()
                    continue
                deadline, alarm, callback = self._alarms[0]
                left = deadline - time.monotonic()
                if left > 0:
                    self._wake_at = deadline
                    self._lock.wait(left)
                    continue
                heapq.heappop(self._alarms)
                self._firing = alarm
            try:
                callback()
            except Exception:  # a failed cancel leaves the statement to the server
                pass
            finally:
                with self._lock:
                    self._firing = None
                    self._lock.notify_all()


watchdog = _Watchdog()
"""Cancels statements of blocking psycopg connections that outlast their timeout."""
