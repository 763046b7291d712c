"""The SQLite state adapter."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import textwrap
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from queuert.adapter_support import CreatedRecords, keyset_page
from queuert.batching import Batcher
from queuert.control_records import (
    QueueCounts,
    QueuePosition,
    RevokedChain,
    SettledJob,
    WorkerInfo,
    WorkerRecord,
)
from queuert.errors import (
    ConfigurationError,
    InvalidTransactionError,
    LeaseLostError,
    SchemaDamagedError,
    SchemaNotMigratedError,
    SchemaTooNewError,
    TransactionClosedError,
    TransientStateError,
)
from queuert.ports.state import StateAdapter, StateCapabilities, describe_transaction
from queuert.rate_records import RateAcquisition
from queuert.records import (
    LEASE_EXPIRED_ERROR,
    BlockerRecord,
    ChainFilter,
    ChainRecord,
    DedupKey,
    JobError,
    JobFilter,
    JobRecord,
    JobStatus,
    Lease,
    NewJob,
    Page,
    ScheduleSlot,
)
from queuert_sqlite import control, limits, rates
from queuert_sqlite.blockers import (
    BlockerStatements,
    blocker_record,
    blocker_rows,
    ids_json,
    waiting_state,
)
from queuert_sqlite.caller_tx import caller_connection, enable_recursive_triggers
from queuert_sqlite.clock import from_us, now_us, to_us
from queuert_sqlite.connections import MEMORY, ConnectContext
from queuert_sqlite.database import Database, Transaction
from queuert_sqlite.dedup import DedupStatements
from queuert_sqlite.errors import schema_missing
from queuert_sqlite.keyed_jobs import set_concurrency_key
from queuert_sqlite.migrations import MIGRATIONS, SCHEMA_VERSION
from queuert_sqlite.rows import (
    acquisition_order,
    chain_from_row,
    completed_from_row,
    job_from_row,
)
from queuert_sqlite.statements import JOB_COLUMNS, MAX_MERGED_QUEUES, Statements
from queuert_sqlite.sync_tx import sync_transaction

_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_LEASE_EXPIRED_JSON = LEASE_EXPIRED_ERROR.to_json()

Connection = aiosqlite.Connection


class SqliteStateAdapter(StateAdapter[aiosqlite.Connection]):
    """Jobs and chains in one SQLite database file.

    **Transactions.** The transaction object ``tx`` is an :class:`aiosqlite.Connection`
    inside a transaction its owner began. :meth:`transaction` gives one on the
    adapter's own connection; :meth:`connect` opens a connection configured like
    the adapter's (autocommit mode, WAL, busy timeout, foreign keys) for an
    application that keeps its own tables in the same file, and
    ``transaction(connection=...)`` runs a transaction on it. Operations given a
    ``tx`` run inside it and neither commit nor roll it back (a ``tx`` in autocommit
    mode gets a savepoint around operations of several statements); with
    ``tx=None`` they commit before returning. The public calls of
    :class:`~queuert.Queuert` accept only a ``tx`` inside a transaction
    (:meth:`check_transaction`).

    **Concurrency.** SQLite has one writer at a time. Write transactions this
    adapter begins use ``BEGIN IMMEDIATE`` and so hold the database write lock from
    the start to the commit; within one process they take turns, and across
    processes sharing the file each waits up to the busy timeout (default 5 s)
    before raising :class:`~queuert.errors.TransientStateError`. Reads with
    ``tx=None`` never wait for the writer (WAL) and see only committed data.
    Because writes lock the whole database, :meth:`lock_job` blocks every other
    writer, not only those of the job, until ``tx`` ends. An operation with
    ``tx=None`` that writes, started while a transaction of this adapter is open,
    waits for that transaction to end; started by the task that holds the
    transaction, it raises :class:`~queuert.errors.AdapterError` instead of waiting
    for itself.

    The adapter's own statements take microseconds, so it runs them on the event
    loop's thread instead of paying a thread hop per statement; it never lets
    SQLite block there, and waits for locks with ``asyncio.sleep``. Statements the
    application sends through the connection run on aiosqlite's thread as usual.

    **Clock.** SQLite has no server clock: the clock of the process running the
    adapter is the one clock every timestamp and comparison uses, stored as integer
    microseconds since the epoch (UTC). Processes sharing a database file must
    therefore share a clock, which they do on one machine.

    **In memory.** ``path=":memory:"`` keeps the database on one connection that
    every operation, reads included, takes in turn; it lives until :meth:`close`
    and cannot be shared with other processes or with :meth:`connect`.

    **Schema.** Nothing is created implicitly: call :meth:`migrate` once per
    database. Operations on a database that was not migrated raise
    :class:`~queuert.errors.SchemaNotMigratedError`.
    """

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

    @classmethod
    async def from_url(cls, url: str) -> SqliteStateAdapter:
        """The adapter for a ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or
        ``sqlite://:memory:`` URL; see :func:`queuert_sqlite.from_url`."""
        from queuert_sqlite.urls import from_url

        return await from_url(url)

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

    # -- schema ------------------------------------------------------------------------

    async def migrate(self) -> None:
        """Apply every migration this version has that the database lacks, each
        recorded in ``{prefix}migrations``. Idempotent; concurrent runs, from any
        process, serialise on the write lock."""
        sql = self._sql
        async with self._db.transaction(None) as conn:
            await self._db.run(conn, sql.create_migrations)
            applied = {row[0] for row in await self._db.run(conn, sql.applied_versions)}
            for migration in MIGRATIONS:
                if migration.version in applied:
                    continue
                for statement in migration.render(self.table_prefix):
                    await self._db.run(conn, statement)
                await self._db.run(
                    conn, sql.record_migration, (migration.version, migration.name, now_us())
                )

    async def check_schema(self) -> None:
        """Raise :class:`~queuert.errors.SchemaNotMigratedError`, naming the call to
        :meth:`migrate`, unless the database is at this adapter's schema version."""
        try:
            rows = await self._db.read(None, self._sql.applied_versions, ())
        except SchemaNotMigratedError:
            raise schema_missing(self.path, "no queuert tables", self._error_args()) from None
        applied = {row[0] for row in rows}
        version = max(applied, default=None)
        # Versions may have gaps: every migration this adapter has must be applied.
        if version is None or any(m.version not in applied for m in MIGRATIONS):
            raise schema_missing(
                self.path,
                f"schema version {version or 0}, this queuert-sqlite needs {SCHEMA_VERSION}",
                self._error_args(),
            )
        if version > SCHEMA_VERSION:
            raise SchemaTooNewError(
                f"SQLite database {self.path!r} has queuert schema version {version}, newer "
                f"than the {SCHEMA_VERSION} this queuert-sqlite knows; upgrade queuert-sqlite"
            )
        applied = {row[0] for row in await self._db.read(None, self._sql.applied_versions, ())}
        # Versions are checked one by one: a database may be at the latest version but
        # lack one that another line of releases added before it.
        missing = [m.version for m in MIGRATIONS if m.version not in applied]
        if version is None or missing:
            raise schema_missing(
                self.path,
                f"schema version {version or 0} (missing {missing}), "
                f"this queuert-sqlite needs {SCHEMA_VERSION}",
                self._error_args(),
            )
        tables = await self._db.read(
            None,
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
            (self._sql.jobs_table,),
        )
        if not tables:
            raise SchemaDamagedError(
                f"SQLite database {self.path!r} records queuert schema version {version} but "
                f"its table {self._sql.jobs_table!r} is missing; migrate() does not recreate "
                "tables of recorded versions: restore it or use a new database"
            )

    # -- writing jobs --------------------------------------------------------------------

    async def create_jobs(
        self, *, tx: Connection | None, jobs: Sequence[NewJob]
    ) -> Sequence[JobRecord]:
        if not jobs:
            return []
        now = now_us()
        rows = [_job_row(job, now) for job in jobs]
        if any(job.concurrency_key is not None for job in jobs):
            keyed = [(*row, job.concurrency_key) for row, job in zip(rows, jobs, strict=True)]
            async with self._db.atomic(tx) as conn:
                await self._db.run_many(conn, limits.insert_keyed_job(self._sql.jobs_table), keyed)
        elif len(rows) == 1:
            await self._db.write(tx, self._sql.insert_job, rows[0])
        else:
            async with self._db.atomic(tx) as conn:
                await self._db.run_many(conn, self._sql.insert_job, rows)
        created = from_us(now)

        def scheduled_at(job: NewJob) -> datetime:
            if job.scheduled_at is None and job.delay_ms == 0:
                return created
            return from_us(_scheduled(job.scheduled_at, job.delay_ms, now))

        return CreatedRecords(jobs, created_at=created, scheduled_at=scheduled_at)

    async def acquire_jobs(
        self,
        *,
        tx: Connection | None,
        queues: Sequence[str],
        limit: int,
        owner: str,
        lease_ms: int,
    ) -> list[JobRecord]:
        names = list(dict.fromkeys(queues))
        if limit <= 0 or not names:
            return []
        now = now_us()
        params: list[Any] = [owner, now + lease_ms * 1000, now]
        if len(names) <= MAX_MERGED_QUEUES:
            sql = self._sql.acquire(len(names))
            for queue in names:
                params += (queue, now, limit)
            params.append(limit)
        else:
            sql = self._sql.acquire_any
            params += (json.dumps(names), now, limit)
        rows = await self._db.write(tx, sql, params)
        jobs = [job_from_row(row) for row in rows]
        jobs.sort(key=acquisition_order)
        return jobs

    async def renew_lease(self, *, tx: Connection | None, lease: Lease, lease_ms: int) -> datetime:
        now = now_us()
        rows = await self._db.write(
            tx,
            self._sql.renew_lease,
            (now + lease_ms * 1000, now, lease.job_id, lease.owner, lease.attempt),
        )
        if not rows:
            raise LeaseLostError(lease.job_id)
        return from_us(rows[0][0])

    async def lock_job(self, *, tx: Connection, lease: Lease) -> JobRecord:
        """Verify the lease and take the database write lock, which blocks every other
        writer until ``tx`` ends. ``tx`` must be inside a transaction; one begun with a
        deferred ``BEGIN`` that already read may raise
        :class:`~queuert.errors.TransientStateError` if another writer committed since."""
        # A transaction begun by transaction() holds the write lock already; any other
        # takes it with a write that changes nothing.
        locked = self._db.holds_write_lock(tx)
        sql = self._sql.check_lease if locked else self._sql.lock_job
        rows = await self._db.run(tx, sql, (lease.job_id, lease.owner, lease.attempt))
        if not rows:
            raise LeaseLostError(lease.job_id)
        return job_from_row(rows[0])

    async def complete_job(self, *, tx: Connection | None, lease: Lease, output: str) -> JobRecord:
        if tx is not None:
            now = now_us()
            params = (output, now, now)
            return completed_from_row(
                await self._guarded_write(tx, lease, self._sql.complete_job, params)
            )
        # Completions running at the same time share one transaction (one commit).
        self._db.check_not_holding()
        row = await self._completions.submit((lease, output))
        if row is None:
            raise LeaseLostError(lease.job_id)
        return completed_from_row(row)

    async def _complete_many(self, items: Sequence[tuple[Lease, str]]) -> dict[str, Any]:
        now = now_us()
        done: dict[str, Any] = {}
        async with self._db.atomic(None) as conn:
            for lease, output in items:
                params = (output, now, now, lease.job_id, lease.owner, lease.attempt)
                rows = await self._db.run(conn, self._sql.complete_job, params)
                if rows:
                    done[lease.job_id] = rows[0]
        return done

    async def continue_job(
        self, *, tx: Connection | None, lease: Lease, next_job: NewJob
    ) -> JobRecord:
        now = now_us()
        job = next_job
        params = (*_job_row(job, now), lease.job_id, lease.owner, lease.attempt)
        async with self._db.atomic(tx) as conn:
            rows = await self._db.run(conn, self._sql.insert_next_job, params)
            if not rows:
                raise LeaseLostError(lease.job_id)
            if job.concurrency_key is not None:
                # In the inserting transaction: no acquisition sees the job without it.
                await self._db.run(
                    conn, set_concurrency_key(self._sql.jobs_table), (job.concurrency_key, job.id)
                )
            await self._db.run(
                conn,
                self._sql.mark_continued,
                (job.id, now, now, lease.job_id, lease.owner, lease.attempt),
            )
        return job_from_row(rows[0])

    async def reschedule_job(
        self,
        *,
        tx: Connection | None,
        lease: Lease,
        error: JobError | None,
        delay_ms: int = 0,
        scheduled_at: datetime | None = None,
        refund_attempt: bool = False,
    ) -> JobRecord:
        now = now_us()
        return await self._guarded(
            tx,
            lease,
            self._sql.reschedule_job,
            (
                _scheduled(scheduled_at, delay_ms, now),
                None if error is None else error.to_json(),
                1 if refund_attempt else 0,
                now,
            ),
        )

    async def fail_job(self, *, tx: Connection | None, lease: Lease, error: JobError) -> JobRecord:
        now = now_us()
        return await self._guarded(tx, lease, self._sql.fail_job, (error.to_json(), now, now))

    async def _guarded(
        self, tx: Connection | None, lease: Lease, sql: str, params: tuple[Any, ...]
    ) -> JobRecord:
        return job_from_row(await self._guarded_write(tx, lease, sql, params))

    async def _guarded_write(
        self, tx: Connection | None, lease: Lease, sql: str, params: tuple[Any, ...]
    ) -> Any:
        """The row ``sql`` (guarded by ``lease``, whose values follow ``params``)
        wrote; raises LeaseLostError when it wrote none."""
        rows = await self._db.write(tx, sql, (*params, lease.job_id, lease.owner, lease.attempt))
        if not rows:
            raise LeaseLostError(lease.job_id)
        return rows[0]

    async def reap_expired_leases(self, *, tx: Connection | None, limit: int) -> list[JobRecord]:
        if limit <= 0:
            return []
        now = now_us()
        rows = await self._db.write(
            tx, self._sql.reap, (now, now, _LEASE_EXPIRED_JSON, now, now, limit)
        )
        return sorted((job_from_row(row) for row in rows), key=lambda job: job.id)

    async def cancel_chain(self, *, tx: Connection | None, chain_id: str) -> ChainRecord | None:
        now = now_us()
        async with self._db.atomic(tx) as conn:
            await self._db.run(conn, self._sql.cancel_chain, (now, now, chain_id))
            rows = await self._db.run(conn, self._sql.get_chain, (chain_id,))
        return chain_from_row(rows[0]) if rows else None

    async def time_until_next_job(
        self, *, tx: Connection | None, queues: Sequence[str]
    ) -> float | None:
        if not queues:
            return None
        rows = await self._db.read(tx, self._sql.next_scheduled_at, (json.dumps(list(queues)),))
        earliest = rows[0][0] if rows else None
        if earliest is None:
            return None
        return max(0.0, (int(earliest) - now_us()) / 1_000_000)

    # -- reading --------------------------------------------------------------------------

    async def get_job(self, *, tx: Connection | None, job_id: str) -> JobRecord | None:
        rows = await self._db.read(tx, self._sql.get_job, (job_id,))
        return job_from_row(rows[0]) if rows else None

    async def list_jobs(
        self, *, tx: Connection | None, filter: JobFilter, after: str | None, limit: int
    ) -> Page[JobRecord]:
        if limit <= 0:
            return Page(items=[], next_cursor=None)
        clauses: list[str] = []
        params: list[Any] = []
        if after is not None:
            clauses.append("id < ?" if filter.newest_first else "id > ?")
            params.append(after)
        if filter.created_after is not None:
            clauses.append("created_at > ?")
            params.append(to_us(filter.created_after, "created_after"))
        if filter.created_before is not None:
            clauses.append("created_at < ?")
            params.append(to_us(filter.created_before, "created_before"))
        if filter.statuses is not None:
            clauses.append("status IN (SELECT value FROM json_each(?))")
            params.append(json.dumps([str(status) for status in filter.statuses]))
        if filter.chain_id is not None:
            clauses.append("chain_id = ?")
            params.append(filter.chain_id)
        if filter.queues is not None:
            clauses.append("queue IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(list(filter.queues)))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        params.append(limit)
        rows = await self._db.read(
            tx,
            f"SELECT {JOB_COLUMNS} FROM {self._sql.jobs_table}{where} "
            f"ORDER BY id{' DESC' if filter.newest_first else ''} LIMIT ?",
            params,
        )
        items = [job_from_row(row) for row in rows]
        return keyset_page(items, limit)

    async def get_chain(self, *, tx: Connection | None, chain_id: str) -> ChainRecord | None:
        rows = await self._db.read(tx, self._sql.get_chain, (chain_id,))
        return chain_from_row(rows[0]) if rows else None

    async def list_chains(
        self, *, tx: Connection | None, filter: ChainFilter, after: str | None, limit: int
    ) -> Page[ChainRecord]:
        if limit <= 0:
            return Page(items=[], next_cursor=None)
        sql = self._sql.chain_select
        params: list[Any] = []
        if after is not None:
            sql += " AND l.chain_id < ?" if filter.newest_first else " AND l.chain_id > ?"
            params.append(after)
        if filter.created_after is not None:
            sql += " AND f.created_at > ?"
            params.append(to_us(filter.created_after, "created_after"))
        if filter.created_before is not None:
            sql += " AND f.created_at < ?"
            params.append(to_us(filter.created_before, "created_before"))
        if filter.statuses is not None:
            sql += " AND l.status IN (SELECT value FROM json_each(?))"
            params.append(json.dumps([str(status) for status in filter.statuses]))
        if filter.chain_names is not None:
            sql += " AND l.chain_name IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(list(filter.chain_names)))
        if filter.dedup_key is not None:
            sql += " AND f.dedup_key = ?"
            params.append(filter.dedup_key)
        if filter.queues is not None:
            sql += " AND l.queue IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(list(filter.queues)))
        sql += f" ORDER BY l.chain_id{' DESC' if filter.newest_first else ''} LIMIT ?"
        params.append(limit)
        rows = await self._db.read(tx, sql, params)
        items = [chain_from_row(row) for row in rows]
        return keyset_page(items, limit)

    async def delete_chains(self, *, tx: Connection | None, chain_ids: Sequence[str]) -> int:
        return await control.delete_chains(self._db, self._sql, self._blocker_sql, tx, chain_ids)

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

    # -- control from outside a worker (statements in queuert_sqlite.control) -----------

    async def revoke_chain(self, *, tx: Connection | None, chain_id: str) -> RevokedChain:
        return await control.revoke_chain(self._db, self._sql, self._ctl, tx, chain_id)

    async def resume_job(self, *, tx: Connection | None, job_id: str) -> JobRecord:
        return await control.resume_job(self._db, self._sql, self._ctl, tx, job_id)

    async def settle_job(
        self, *, tx: Connection | None, job_id: str, output: str | None, next_job: NewJob | None
    ) -> SettledJob:
        return await control.settle_job(
            self._db, self._sql, self._ctl, tx, job_id, output, next_job, _job_row
        )

    async def purge_chains(
        self,
        *,
        tx: Connection | None,
        ended_before: datetime,
        statuses: Sequence[JobStatus],
        limit: int,
    ) -> int:
        before = to_us(ended_before, "ended_before")
        return await control.purge_chains(
            self._db, self._ctl, self._blocker_sql, tx, statuses, before, limit
        )

    async def record_worker(
        self, *, tx: Connection | None, worker: WorkerInfo, forget_ms: int
    ) -> None:
        await control.record_worker(self._db, self._ctl, tx, worker, forget_ms)

    async def remove_worker(self, *, tx: Connection | None, worker_id: str) -> None:
        await self._db.write(tx, self._ctl.remove_worker, (worker_id,))

    async def list_workers(self, *, tx: Connection | None) -> list[WorkerRecord]:
        return await control.list_workers(self._db, self._ctl, tx)

    async def count_jobs(self, *, tx: Connection | None) -> QueueCounts:
        return await control.count_jobs(self._db, self._ctl, tx)

    async def queue_position(self, *, tx: Connection | None, job_id: str) -> QueuePosition | None:
        return await control.queue_position(self._db, self._sql, self._ctl, tx, job_id)

    async def schema_sql(self) -> list[str]:
        statements = [self._sql.create_migrations]
        for migration in MIGRATIONS:
            statements += [
                textwrap.dedent(text).strip() for text in migration.render(self.table_prefix)
            ]
            statements.append(
                f"INSERT INTO {self._sql.migrations_table} (version, name, applied_at) VALUES "
                f"({int(migration.version)}, '{migration.name}', "
                "CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER))"
            )
        return statements

    # -- the caller's transaction ------------------------------------------------------

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

    # -- blockers --------------------------------------------------------------------

    async def create_blocked_jobs(
        self,
        *,
        tx: Connection | None,
        jobs: Sequence[NewJob],
        blocker_chain_ids: Sequence[str],
        run_on_blocker_failure: bool = False,
    ) -> Sequence[JobRecord]:
        """As the port says; inside one write transaction, so no blocker chain ends
        between the read of its state and the commit (a caller's transaction begun
        with a deferred ``BEGIN`` raises TransientStateError if one did)."""
        async with self._db.atomic(tx) as conn:
            state = await self._waiting_state(conn, blocker_chain_ids, run_on_blocker_failure)
            await self.create_jobs(tx=conn, jobs=jobs)
            return await self._wait_on(conn, [job.id for job in jobs], blocker_chain_ids, state)

    async def continue_blocked_job(
        self,
        *,
        tx: Connection | None,
        lease: Lease,
        next_job: NewJob,
        blocker_chain_ids: Sequence[str],
        run_on_blocker_failure: bool = False,
    ) -> JobRecord:
        async with self._db.atomic(tx) as conn:
            state = await self._waiting_state(conn, blocker_chain_ids, run_on_blocker_failure)
            await self.continue_job(tx=conn, lease=lease, next_job=next_job)
            (record,) = await self._wait_on(conn, [next_job.id], blocker_chain_ids, state)
            return record

    async def _waiting_state(
        self, conn: Connection, blocker_chain_ids: Sequence[str], run_on_failure: bool
    ) -> tuple[str, int, str | None, int | None, int]:
        heads = await self._db.run(
            conn, self._blocker_sql.chain_heads, (ids_json(blocker_chain_ids),)
        )
        wait = waiting_state(heads, blocker_chain_ids, now_us(), run_on_failure)
        return (*wait, 1 if run_on_failure else 0)

    async def _wait_on(
        self,
        conn: Connection,
        job_ids: list[str],
        blocker_chain_ids: Sequence[str],
        state: tuple[str, int, str | None, int | None, int],
    ) -> list[JobRecord]:
        sql = self._blocker_sql
        status, left, error, completed_at, runs = state
        now = now_us()
        await self._db.run_many(conn, sql.insert_blocker, blocker_rows(job_ids, blocker_chain_ids))
        rows = await self._db.run(
            conn,
            sql.set_waiting,
            (status, left, error, completed_at, now, runs, ids_json(job_ids)),
        )
        by_id = {record.id: record for record in map(job_from_row, rows)}
        return [by_id[job_id] for job_id in job_ids]

    async def get_blockers(self, *, tx: Connection | None, job_id: str) -> list[BlockerRecord]:
        rows = await self._db.read(tx, self._blocker_sql.get_blockers, (job_id,))
        return [blocker_record(row) for row in rows]

    async def list_dependent_chains(
        self, *, tx: Connection | None, chain_ids: Sequence[str]
    ) -> list[str]:
        if not chain_ids:
            return []
        rows = await self._db.read(tx, self._blocker_sql.dependent_chains, (ids_json(chain_ids),))
        return [row[0] for row in rows]

    # -- deduplication ---------------------------------------------------------------

    async def create_deduplicated_jobs(
        self,
        *,
        tx: Connection | None,
        jobs: Sequence[NewJob],
        dedup: Sequence[DedupKey],
        blocker_chain_ids: Sequence[str] | None = None,
        run_on_blocker_failure: bool = False,
    ) -> list[str]:
        """As the port says; the key is taken in the write transaction that inserts
        the job, under the key table's primary key."""
        sql = self._dedup_sql
        holders: list[str] = []
        async with self._db.atomic(tx) as conn:
            # Read once: the write lock keeps every blocker chain as it is now.
            wait = (
                None
                if blocker_chain_ids is None
                else await self._waiting_state(conn, blocker_chain_ids, run_on_blocker_failure)
            )
            for job, request in zip(jobs, dedup, strict=True):
                now = now_us()
                window = None if request.window_ms is None else request.window_ms * 1000
                params = (job.chain_name, request.key, job.chain_id, now, request.scope.value)
                taken = await self._db.run(conn, sql.take_key, (*params, window))
                if not taken:
                    rows = await self._db.run(conn, sql.holder, (job.chain_name, request.key))
                    holders.append(rows[0][0])
                    continue
                await self.create_jobs(tx=conn, jobs=[job])
                await self._db.run(conn, sql.mark_key, (request.key, job.id))
                if blocker_chain_ids is not None and wait is not None:
                    await self._wait_on(conn, [job.id], blocker_chain_ids, wait)
                holders.append(job.chain_id)
        return holders

    # -- limits --------------------------------------------------------------------------

    async def acquire_limited_jobs(
        self,
        *,
        tx: Connection | None,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        concurrency_limit: int,
        per_key: bool,
    ) -> list[JobRecord]:
        if limit <= 0:
            return []
        now = now_us()
        jobs = self._sql.jobs_table
        params: tuple[Any, ...]
        if per_key:
            sql = limits.acquire_under_key_limit(jobs)
            params = (queue, now, concurrency_limit, limit, owner, now + lease_ms * 1000)
        else:
            sql = limits.acquire_under_limit(jobs)
            params = (
                owner,
                now + lease_ms * 1000,
                now,
                queue,
                now,
                limit,
                concurrency_limit,
                queue,
                now,
            )
        rows = await self._db.write(tx, sql, params)
        acquired = [job_from_row(row) for row in rows]
        acquired.sort(key=acquisition_order)
        return acquired

    # -- rate limits (statements in rates) -------------------------------------------------

    async def acquire_rate_limited_jobs(
        self,
        *,
        tx: Connection | None,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        rate: int,
        window_ms: int,
        per_key: bool,
        concurrency_limit: int | None,
    ) -> RateAcquisition:
        if limit <= 0:
            return RateAcquisition()
        async with self._db.atomic(tx) as conn:
            return await rates.acquire(
                self._db,
                conn,
                self.table_prefix,
                queue=queue,
                limit=limit,
                owner=owner,
                lease_ms=lease_ms,
                rate=rate,
                window_ms=window_ms,
                per_key=per_key,
                concurrency_limit=concurrency_limit,
            )

    # -- schedules -----------------------------------------------------------------------

    async def start_scheduled_chain(
        self, *, tx: Connection | None, schedule: str, slot_time: datetime, job: NewJob
    ) -> bool:
        prefix = self.table_prefix
        slot_us = to_us(slot_time, "slot_time")
        async with self._db.atomic(tx) as conn:
            rows = await self._db.run(
                conn,
                limits.insert_schedule_slot(prefix),
                (schedule, slot_us, job.chain_id, now_us()),
            )
            if not rows:
                return False
            await self.create_jobs(tx=conn, jobs=[job])
        return True

    async def get_last_schedule_slot(
        self, *, tx: Connection | None, schedule: str
    ) -> ScheduleSlot | None:
        rows = await self._db.read(tx, limits.last_schedule_slot(self.table_prefix), (schedule,))
        return _slot(rows)

    async def get_chain_schedule_slot(
        self, *, tx: Connection | None, chain_id: str
    ) -> ScheduleSlot | None:
        rows = await self._db.read(tx, limits.chain_schedule_slot(self.table_prefix), (chain_id,))
        return _slot(rows)


def _job_row(job: NewJob, now: int) -> tuple[Any, ...]:
    """The values of a new job's row, in the order ``insert_job`` and
    ``insert_next_job`` take them (created and updated at ``now``)."""
    return (
        job.id,
        job.chain_id,
        job.chain_name,
        job.queue,
        job.position,
        job.input,
        job.max_attempts,
        job.priority,
        _scheduled(job.scheduled_at, job.delay_ms, now),
        now,
        now,
        job.trace_context,
    )


def _scheduled(scheduled_at: datetime | None, delay_ms: int, now: int) -> int:
    if scheduled_at is not None:
        return to_us(scheduled_at, "scheduled_at")
    return now + delay_ms * 1000


def _slot(rows: Sequence[Any]) -> ScheduleSlot | None:
    if not rows:
        return None
    schedule, slot_us, chain_id = rows[0]
    return ScheduleSlot(schedule=schedule, slot_time=from_us(slot_us), chain_id=chain_id)
