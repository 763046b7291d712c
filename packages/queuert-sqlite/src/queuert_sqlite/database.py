"""How the adapter reaches its database file: its connections, the turns its
writers take, its transactions and savepoints, and statement execution with
driver errors translated."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, TypeVar

import aiosqlite

from queuert.errors import AdapterError, QueuertError, TransientStateError
from queuert_sqlite.connections import MEMORY, Link, open_raw, retry_busy
from queuert_sqlite.errors import translate
from queuert_sqlite.reader import ReaderThread

T = TypeVar("T")

Connection = aiosqlite.Connection

_SAVEPOINT = "queuert_savepoint"  # nested savepoints may share a name: SQLite picks the newest
# Checkpoint after this many commits or changed rows, whichever comes first: about
# what SQLite's own automatic checkpoint (every 1000 WAL pages) would do.
_CHECKPOINT_COMMITS = 250
_CHECKPOINT_CHANGES = 2000


class Database:
    """One SQLite database as the adapter uses it.

    - A *writer* connection, used by one task at a time (the *gate*): transactions
      of :meth:`transaction` and writes with ``tx=None`` run on it, so this
      process's writers queue here instead of polling SQLite's lock.
    - A *reader* connection for reads with ``tx=None``: in WAL mode it sees the
      last commit and never waits for the writer. In memory there is only the
      writer, and reads take their turn at it too.

    The writer's own statements run on the event loop's thread (see
    :mod:`queuert_sqlite.connections`); the reader's run on a thread of their own
    (:mod:`queuert_sqlite.reader`), so that a long read never holds up the loop;
    statements on any other connection, and those sent through the writer by the
    application, run on aiosqlite's thread.
    """

    def __init__(self, path: str, *, busy_timeout_ms: int, error_args: str) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self.memory = path == MEMORY
        self._error_args = error_args
        self._gate = asyncio.Lock()
        self._gate_waiters = 0  # tasks in the timed wait below
        self._gate_holder: asyncio.Task[Any] | None = None
        # Work still running on the writer's thread when its task was cancelled: the
        # next holder of the gate waits for it first.
        self._writer_busy: asyncio.Future[Any] | None = None
        self._writer: Link | None = None
        self._reader: sqlite3.Connection | None = None
        self._reads: ReaderThread | None = None
        self._immediate = False  # the writer is inside a BEGIN IMMEDIATE of transaction()
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._commits_since_checkpoint = 0
        self._changes_at_checkpoint = 0

    async def close(self) -> None:
        """Close the connections; later use opens new ones. Idempotent."""
        writer, self._writer = self._writer, None
        reader, self._reader = self._reader, None
        reads, self._reads = self._reads, None
        if reads is not None:
            await asyncio.shield(reads.close(reader))
        elif reader is not None:
            reader.close()
        checkpoint, self._checkpoint_task = self._checkpoint_task, None
        if checkpoint is not None:
            await asyncio.gather(checkpoint, return_exceptions=True)
        if writer is not None:
            await asyncio.shield(writer.close())

    def error(self, error: sqlite3.Error) -> QueuertError:
        return translate(error, self.path, self._error_args)

    # -- connections and turns ---------------------------------------------------

    def check_not_holding(self) -> None:
        """Raise :class:`~queuert.errors.AdapterError` when the current task holds a
        transaction of this database: a write of its own would wait for itself."""
        task = asyncio.current_task()
        if task is not None and self._gate_holder is task:
            raise AdapterError(
                "this task already holds a transaction of this SqliteStateAdapter; pass it "
                "as tx= instead of opening another (SQLite has one writer at a time)"
            )

    async def _take_turn(self) -> float:
        """Wait for this task's turn at the writer; :meth:`_end_turn` ends it. Returns
        the loop time by which the database write lock must be obtained (the busy
        timeout covers the whole wait)."""
        self.check_not_holding()
        # Statements here run without suspending; let other tasks run at least once per
        # operation, as a round trip to a server would.
        await asyncio.sleep(0)
        deadline = asyncio.get_running_loop().time() + self.busy_timeout_ms / 1000
        if not self._gate.locked() and not self._gate_waiters and self._writer_busy is None:
            # Free and nobody queued: acquire() returns at once, so no timeout is armed.
            await self._gate.acquire()
            self._gate_holder = asyncio.current_task()
            return deadline
        acquired = False
        self._gate_waiters += 1
        try:
            async with asyncio.timeout_at(deadline):
                await self._gate.acquire()
                acquired = True
                busy = self._writer_busy
                if busy is not None:
                    await asyncio.wait([busy])
        except BaseException as error:
            if acquired:
                self._gate.release()
            if isinstance(error, TimeoutError):
                raise TransientStateError(
                    f"SQLite database {self.path!r} is busy: a write transaction of this "
                    f"adapter stayed open for more than {self.busy_timeout_ms} ms"
                ) from None
            raise
        finally:
            self._gate_waiters -= 1
        self._writer_busy = None
        self._gate_holder = asyncio.current_task()
        return deadline

    def _end_turn(self) -> None:
        self._gate_holder = None
        self._gate.release()

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[float]:
        deadline = await self._take_turn()
        try:
            yield deadline
        finally:
            self._end_turn()

    async def _writer_link(self) -> Link:
        # Only called during a turn.
        if self._writer is None:
            self._writer = await Link.open(self.path, busy_timeout_ms=self.busy_timeout_ms)
        return self._writer

    async def _reader_raw(self) -> sqlite3.Connection:
        reader = self._reader
        if reader is not None:
            return reader
        opened = await open_raw(self.path, busy_timeout_ms=self.busy_timeout_ms)
        return self._keep_reader(opened)

    def _keep_reader(self, opened: sqlite3.Connection) -> sqlite3.Connection:
        if self._reader is not None:  # another task opened one meanwhile
            opened.close()
            return self._reader
        self._reader = opened
        return opened

    def _direct(self, tx: Connection) -> sqlite3.Connection | None:
        """The raw connection behind ``tx`` when statements may run on it directly: it
        is the writer and this task has the turn."""
        writer = self._writer
        if writer is None or tx is not writer.conn:
            return None
        holder = self._gate_holder
        if holder is None or holder is not asyncio.current_task():
            return None
        return writer.raw

    def holds_write_lock(self, tx: Connection) -> bool:
        """Whether ``tx`` is the writer inside a transaction of :meth:`transaction`,
        which took the database write lock when it began."""
        return self._immediate and self._direct(tx) is not None

    def in_transaction(self, tx: Connection) -> bool:
        raw = self._direct(tx)
        return raw.in_transaction if raw is not None else tx.in_transaction

    async def _on_writer_thread(self, work: Awaitable[T]) -> T:
        """Await ``work`` sent to the writer's aiosqlite thread; if this task is
        cancelled meanwhile, the next turn still waits for it to finish."""
        future = asyncio.ensure_future(work)
        self._writer_busy = future
        result = await asyncio.shield(future)
        self._writer_busy = None
        return result

    # -- statements ----------------------------------------------------------------

    async def run(self, tx: Connection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """One statement inside ``tx``; its rows."""
        raw = self._direct(tx)
        try:
            if raw is not None:
                return raw.execute(sql, params).fetchall()
            return list(await tx.execute_fetchall(sql, params))
        except sqlite3.Error as error:
            raise self.error(error) from error

    async def run_many(self, tx: Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """One statement inside ``tx`` once per row of parameters."""
        raw = self._direct(tx)
        try:
            if raw is not None:
                raw.executemany(sql, rows)
            else:
                await tx.executemany(sql, rows)
        except sqlite3.Error as error:
            raise self.error(error) from error

    async def write(self, tx: Connection | None, sql: str, params: Sequence[Any]) -> list[Any]:
        """One statement: in ``tx``, or on its own (one statement is its own
        transaction), waiting for the write lock up to the busy timeout."""
        if tx is not None:
            return await self.run(tx, sql, params)
        deadline = await self._take_turn()
        try:
            raw = (await self._writer_link()).raw
            rows = await self._retrying(lambda: raw.execute(sql, params).fetchall(), deadline)
        finally:
            self._end_turn()
        self._committed(raw)
        return rows

    async def read(self, tx: Connection | None, sql: str, params: Sequence[Any]) -> list[Any]:
        """One statement that only reads: in ``tx``, or on the reader."""
        if tx is not None:
            return await self.run(tx, sql, params)
        if self.memory:
            async with self._turn():
                raw = (await self._writer_link()).raw
                try:
                    return raw.execute(sql, params).fetchall()
                except sqlite3.Error as error:
                    raise self.error(error) from error
        reader = await self._reader_raw()
        reads = self._reads
        if reads is None:
            reads = self._reads = ReaderThread()
        deadline = asyncio.get_running_loop().time() + self.busy_timeout_ms / 1000
        try:
            # On a thread of its own: a long read must not hold up the event loop.
            return await reads.run_retrying_busy(
                lambda: reader.execute(sql, params).fetchall(), deadline=deadline, path=self.path
            )
        except sqlite3.Error as error:
            raise self.error(error) from error

    async def _retrying(self, attempt: Callable[[], T], deadline: float) -> T:
        try:
            return await retry_busy(attempt, deadline=deadline, path=self.path)
        except sqlite3.Error as error:
            raise self.error(error) from error

    # -- transactions ----------------------------------------------------------------

    def transaction(self, connection: Connection | None) -> Transaction:
        """``BEGIN IMMEDIATE`` on the writer, or on ``connection``; commit on a normal
        exit, roll back on an exception."""
        return Transaction(self, connection)

    @asynccontextmanager
    async def atomic(self, tx: Connection | None) -> AsyncIterator[Connection]:
        """Several statements as one unit: a transaction of the adapter's own, the
        caller's transaction, or a savepoint when ``tx`` is in autocommit mode."""
        if tx is None:
            async with self.transaction(None) as conn:
                yield conn
        elif self.in_transaction(tx):
            yield tx
        else:
            async with self.savepoint(tx) as conn:
                yield conn

    async def _begin_writer(self, deadline: float) -> Link:
        link = await self._writer_link()
        raw = link.raw
        await self._retrying(lambda: raw.execute("BEGIN IMMEDIATE"), deadline)
        self._immediate = True
        return link

    async def _end_writer(self, link: Link, *, commit: bool) -> None:
        self._immediate = False
        if not commit:
            await self._roll_back_writer(link.conn)
            return
        raw = link.raw
        try:
            raw.execute("COMMIT")
        except sqlite3.Error as error:
            await self._roll_back_writer(link.conn)
            raise self.error(error) from error
        self._committed(raw)

    async def _roll_back_writer(self, conn: Connection) -> None:
        """Roll back through aiosqlite's queue, after any statement of the block still
        waiting there."""
        # The block's own error is the one to report; a connection that cannot roll
        # back has already ended the transaction.
        with contextlib.suppress(sqlite3.Error):
            await self._on_writer_thread(conn.rollback())

    async def _begin_connection(self, conn: Connection) -> None:
        await self.run(conn, "BEGIN IMMEDIATE")  # waits on the connection's own thread

    async def _end_connection(self, conn: Connection, *, commit: bool) -> None:
        if not commit:
            if conn.in_transaction:
                await asyncio.shield(conn.rollback())
            return
        try:
            await asyncio.shield(conn.commit())
        except sqlite3.Error as error:
            if conn.in_transaction:
                await asyncio.shield(conn.rollback())
            raise self.error(error) from error

    @asynccontextmanager
    async def savepoint(self, tx: Connection) -> AsyncIterator[Connection]:
        """``SAVEPOINT`` in ``tx``: rolled back to and released when the block raises,
        released when it exits normally."""
        await self.run(tx, f"SAVEPOINT {_SAVEPOINT}")
        try:
            yield tx
        except BaseException as error:
            try:
                # Through aiosqlite's queue: after any statement of the block still there.
                await asyncio.shield(_roll_back_savepoint(tx))
            except Exception as rollback_error:
                # The driver already ended the whole transaction; the block's own error
                # is the one to report.
                error.add_note(f"rolling back the savepoint also failed: {rollback_error}")
            raise
        await self.run(tx, f"RELEASE SAVEPOINT {_SAVEPOINT}")

    # -- checkpoints ---------------------------------------------------------------

    def _committed(self, raw: sqlite3.Connection) -> None:
        """Count a commit of the writer; start a checkpoint when the WAL has grown."""
        if self.memory:
            return
        self._commits_since_checkpoint += 1
        changes = raw.total_changes
        if changes < self._changes_at_checkpoint:  # counted on a connection opened since
            self._changes_at_checkpoint = changes
        if (
            self._commits_since_checkpoint < _CHECKPOINT_COMMITS
            and changes - self._changes_at_checkpoint < _CHECKPOINT_CHANGES
        ):
            return
        if self._checkpoint_task is not None and not self._checkpoint_task.done():
            return
        self._commits_since_checkpoint = 0
        self._changes_at_checkpoint = changes
        self._checkpoint_task = asyncio.get_running_loop().create_task(self._checkpoint())

    async def _checkpoint(self) -> None:
        """Copy the WAL back into the database file on the writer's thread during a
        turn of its own: the event loop goes on, this process's writers wait, so
        the checkpoint catches up and the WAL restarts from its beginning."""
        try:
            async with self._turn():
                writer = self._writer
                if writer is not None:
                    await self._on_writer_thread(
                        writer.conn.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)")
                    )
        except (QueuertError, sqlite3.Error):
            # A checkpoint that cannot run now only leaves the WAL longer for a while.
            pass


class Transaction:
    """``async with``: a turn at the writer and a ``BEGIN IMMEDIATE`` transaction on
    the writer (or the given connection) for the block; commit on a normal exit,
    roll back on an exception."""

    __slots__ = ("_connection", "_db", "_link")

    def __init__(self, db: Database, connection: Connection | None) -> None:
        self._db = db
        self._connection = connection
        self._link: Link | None = None

    async def __aenter__(self) -> Connection:
        db = self._db
        deadline = await db._take_turn()
        try:
            if self._connection is not None:
                await db._begin_connection(self._connection)
                return self._connection
            self._link = await db._begin_writer(deadline)
            return self._link.conn
        except BaseException:
            db._end_turn()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        db = self._db
        try:
            if self._link is not None:
                await db._end_writer(self._link, commit=exc_type is None)
            elif self._connection is not None:
                await db._end_connection(self._connection, commit=exc_type is None)
        finally:
            db._end_turn()


async def _roll_back_savepoint(tx: Connection) -> None:
    await tx.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
    await tx.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
