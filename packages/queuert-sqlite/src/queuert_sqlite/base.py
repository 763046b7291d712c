"""What every operation of the SQLite state adapter stands on: the database and its
connections, the statements, transactions (the adapter's own and the caller's) and
the batching of completions."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from queuert.batching import Batcher
from queuert.errors import (
    ConfigurationError,
    InvalidTransactionError,
    LeaseLostError,
    TransactionClosedError,
    TransientStateError,
)
from queuert.ports.state import StateAdapter, StateCapabilities, describe_transaction
from queuert.records import JobStatus, Lease
from queuert_sqlite import control
from queuert_sqlite.blockers import BlockerStatements
from queuert_sqlite.caller_tx import caller_connection, enable_recursive_triggers
from queuert_sqlite.clock import now_us
from queuert_sqlite.connections import MEMORY, ConnectContext
from queuert_sqlite.database import Database, Transaction
from queuert_sqlite.dedup import DedupStatements
from queuert_sqlite.statements import Statements
from queuert_sqlite.sync_tx import sync_transaction

_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

Connection = aiosqlite.Connection


class SqliteBase(StateAdapter[aiosqlite.Connection]):
    """The shared part of :class:`~queuert_sqlite.SqliteStateAdapter` (see there)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table_prefix: str = "queuert_",
        busy_timeout_ms: int = 5000,
    ) -> None:
        """Raises :class:`~queuert.errors.ConfigurationError` for an empty path, a table
        prefix that is not an SQL identifier, or a non-positive busy timeout. Opens
        nothing until first used."""
        path_text = os.fspath(path)
        if not isinstance(path_text, str) or not path_text:
            raise ConfigurationError(f"SQLite database path must be a non-empty path: {path!r}")
        if not isinstance(table_prefix, str) or not _PREFIX.match(table_prefix):
            raise ConfigurationError(
                f"table_prefix must be letters, digits and underscores: {table_prefix!r}"
            )
        if isinstance(busy_timeout_ms, bool) or not isinstance(busy_timeout_ms, int):
            raise ConfigurationError(f"busy_timeout_ms must be an integer: {busy_timeout_ms!r}")
        if busy_timeout_ms <= 0:
            raise ConfigurationError(f"busy_timeout_ms must be positive: {busy_timeout_ms!r}")
        self.path = path_text
        self.table_prefix = table_prefix
        self.busy_timeout_ms = busy_timeout_ms
        self._memory = path_text == MEMORY
        self.capabilities = StateCapabilities(
            row_locks=True,
            # Write transactions serialise on the database write lock.
            concurrent_transactions=False,
            savepoints=True,
            clock_precision_ms=0.001,
            native_notify=False,
            multi_process=not self._memory,
            blockers=True,
            deduplication=True,
            concurrency_limits=True,
            schedules=True,
            rate_limits=True,
        )
        self._sql = Statements(table_prefix)
        self._ctl = control.ControlStatements(table_prefix)
        self._blocker_sql = BlockerStatements(table_prefix)
        self._dedup_sql = DedupStatements(table_prefix)
        self._db = Database(
            path_text, busy_timeout_ms=busy_timeout_ms, error_args=self._error_args()
        )
        self._completions: Batcher[tuple[Lease, str], Any] = Batcher(
            self._complete_many, key=lambda item: item[0].job_id
        )

    def __repr__(self) -> str:
        return f"SqliteStateAdapter(path={self.path!r}, table_prefix={self.table_prefix!r})"

    # -- connections -------------------------------------------------------------

    def connect(self) -> ConnectContext:
        """Open a connection to the same database configured like the adapter's own.
        ``await`` it (and close the connection yourself) or use ``async with``.

        Raises :class:`~queuert.errors.ConfigurationError` for an in-memory database,
        whose data no other connection can see."""
        if self._memory:
            raise ConfigurationError(
                "an in-memory SQLite database lives on the adapter's one connection; "
                "use adapter.transaction() to work in it, or use a database file"
            )
        return ConnectContext(self.path, self.busy_timeout_ms)

    async def close(self) -> None:
        """Close the connections the adapter opened. Idempotent; the adapter opens
        new ones if it is used again (an in-memory database starts empty then)."""
        self._completions.cancel_pending()
        await self._db.close()

    def _error_args(self) -> str:
        """The constructor arguments to show in the command that migrates."""
        args = f"path={self.path!r}"
        if self.table_prefix != "queuert_":
            args += f", table_prefix={self.table_prefix!r}"
        return args

    # -- transactions ----------------------------------------------------------------

    def transaction(
        self, *, connection: Connection | None = None
    ) -> AbstractAsyncContextManager[Connection]:
        """Begin ``BEGIN IMMEDIATE`` (taking the database write lock), yield the
        connection, commit when the block exits normally and roll back when it raises.

        Runs on the adapter's own connection, or on ``connection`` (one from
        :meth:`connect`, in autocommit mode) so that the application's transactions
        take turns with the adapter's instead of polling SQLite's lock.

        Raises :class:`~queuert.errors.TransientStateError` when the write lock is
        not obtained within the busy timeout, and
        :class:`~queuert.errors.AdapterError` when this task already holds a
        transaction of the adapter.
        """
        return self._db.transaction(connection)

    def leased_transaction(
        self, *, lease: Lease, lock: bool
    ) -> AbstractAsyncContextManager[Connection]:
        """As the port says. Every transaction of the adapter holds the database write
        lock from its start, which locks the job as well: verifying and locking are
        one check. Waiting for the write lock goes on past the busy timeout while the
        lease is held and unexpired (nothing of the attempt has run yet); it raises
        :class:`~queuert.errors.LeaseLostError` once the lease is gone, and
        :class:`~queuert.errors.TransientStateError` once it expired."""
        return self._leased_transaction(lease)

    @asynccontextmanager
    async def _leased_transaction(self, lease: Lease) -> AsyncIterator[Connection]:
        transaction, conn = await self._begin_leased(lease)
        try:
            params = (lease.job_id, lease.owner, lease.attempt)
            if not await self._db.run(conn, self._sql.lease_held, params):
                raise LeaseLostError(lease.job_id)
            yield conn
        except BaseException as exc:
            await transaction.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        await transaction.__aexit__(None, None, None)

    async def _begin_leased(self, lease: Lease) -> tuple[Transaction, Connection]:
        """Begin a transaction for ``lease``'s job. While another connection keeps the
        write lock past the busy timeout, wait again as long as the lease is still
        held and unexpired (read without the lock): nothing of the attempt has run
        yet, so giving up would cost an attempt for nothing."""
        while True:
            transaction = self._db.transaction(None)
            try:
                return transaction, await transaction.__aenter__()
            except TransientStateError:
                job = await self.get_job(tx=None, job_id=lease.job_id)
                if (
                    job is None
                    or job.status is not JobStatus.RUNNING
                    or job.leased_by != lease.owner
                    or job.attempt != lease.attempt
                ):
                    raise LeaseLostError(lease.job_id) from None
                if job.leased_until is None or job.leased_until <= datetime.now(UTC):
                    raise

    def savepoint(self, *, tx: Connection) -> AbstractAsyncContextManager[Connection]:
        """``SAVEPOINT`` inside ``tx``: an exception in the block rolls back to it and
        propagates, a normal exit releases it."""
        return self._db.savepoint(tx)

    # -- the caller's transaction ------------------------------------------------------

    async def caller_transaction(self, tx: object) -> Connection:
        """An aiosqlite connection as it is; an SQLAlchemy ``AsyncSession`` or
        ``AsyncConnection`` (``sqlite+aiosqlite``) of this database file as its
        aiosqlite connection, in its transaction (see
        :mod:`queuert_sqlite.caller_tx`)."""
        return await caller_connection(self, tx)

    def sync_transaction(self, conn: object) -> Connection:
        """A ``sqlite3.Connection`` on this database file, in its transaction, for
        :mod:`queuert.sync` (see :mod:`queuert_sqlite.sync_tx`)."""
        return sync_transaction(self, conn)

    async def is_transaction_open(self, *, tx: Connection) -> bool:
        """Whether ``tx`` is an open connection inside a transaction (sqlite3's
        ``in_transaction``): ``False`` after a ``COMMIT`` or ``ROLLBACK`` sent through
        it, in autocommit mode, and once it is closed."""
        given: object = tx  # a caller may hand anything over
        if not isinstance(given, aiosqlite.Connection):
            return False
        try:
            return self._db.in_transaction(given)
        except (ValueError, sqlite3.Error):  # aiosqlite's and sqlite3's "closed"
            return False

    async def check_transaction(self, *, tx: object) -> Connection:
        """Accept an :class:`aiosqlite.Connection` inside a transaction; an object of
        another type raises :class:`~queuert.errors.InvalidTransactionError`, a closed
        connection or one in autocommit mode (its transaction committed or rolled
        back, or never begun) :class:`~queuert.errors.TransactionClosedError`. The
        accepted connection gets recursive triggers enabled (see
        :func:`queuert_sqlite.caller_tx.enable_recursive_triggers`)."""
        if not isinstance(tx, aiosqlite.Connection):
            raise InvalidTransactionError(
                f"{describe_transaction(tx)} is not an aiosqlite.Connection inside a transaction"
            )
        if not await self.is_transaction_open(tx=tx):
            raise TransactionClosedError(
                f"{describe_transaction(tx)} is closed or not inside a transaction (it was "
                "committed or rolled back, or never begun)"
            )
        await enable_recursive_triggers(self, tx)
        return tx

    # -- batched completions -------------------------------------------------------------

    async def _complete_many(self, items: Sequence[tuple[Lease, str]]) -> dict[str, Any]:
        """Complete ``items`` (submitted by ``complete_job`` with ``tx=None``) in one
        transaction; the written row of each job whose lease was still held, by id."""
        now = now_us()
        done: dict[str, Any] = {}
        async with self._db.atomic(None) as conn:
            for lease, output in items:
                params = (output, now, now, lease.job_id, lease.owner, lease.attempt)
                rows = await self._db.run(conn, self._sql.complete_job, params)
                if rows:
                    done[lease.job_id] = rows[0]
        return done
