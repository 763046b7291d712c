"""The PostgreSQL state adapter."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from datetime import datetime, timedelta
from typing import Any, NoReturn, TypeAlias
from urllib.parse import parse_qsl, urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from queuert.adapter_support import CreatedRecords, keyset_page
from queuert.batching import Batcher
from queuert.blockers import initial_wait
from queuert.control_records import (
    QueueCounts,
    QueuePosition,
    RevokedChain,
    SettledJob,
    WorkerInfo,
    WorkerRecord,
)
from queuert.errors import (
    AdapterError,
    ConfigurationError,
    JobNotFoundError,
    LeaseLostError,
    QueuertError,
    SchemaDamagedError,
    SchemaNotMigratedError,
    SchemaTooNewError,
    TransientStateError,
)
from queuert.ports.notify import NotifyAdapter
from queuert.ports.state import StateAdapter, StateCapabilities
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
from queuert.urls import redact_message
from queuert_postgres import control_ops as postgres_control
from queuert_postgres import migrations, tx_checks
from queuert_postgres.after_commit import AfterCommitSignals
from queuert_postgres.blockers import BlockerStatements
from queuert_postgres.caller_tx import caller_connection, sync_connection
from queuert_postgres.connections import (
    LendingConnection,
    PostgresTx,
    mark_clean,
    reset_on_release,
)
from queuert_postgres.control import ControlStatements
from queuert_postgres.dedup import DedupStatements
from queuert_postgres.driver_errors import DRIVER_ERRORS, MIGRATE_HINT, translate
from queuert_postgres.job_args import alike_chain_starts, continue_args, new_job_args, shared_fields
from queuert_postgres.keyed_jobs import keyed_job_statements
from queuert_postgres.limits import LimitStatements, limit_lock_key, limit_statements
from queuert_postgres.names import Names
from queuert_postgres.notify import PostgresNotifyAdapter
from queuert_postgres.rates import LOCK as RATE_LOCK
from queuert_postgres.rates import rate_lock_key, rate_statements
from queuert_postgres.rows import chain_record, completed_record, job_record
from queuert_postgres.statements import JOB_COLUMN_COUNT, SignalChannels, Statements
from queuert_postgres.urls import int_option, redact, split_url

logger = logging.getLogger("queuert.postgres")

DEFAULT_SCHEMA = "queuert"
URL_OPTIONS = ("schema", "table_prefix", "min_size", "max_size")
_LEASE_EXPIRED_JSON = LEASE_EXPIRED_ERROR.to_json()
_Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"

DEFAULT_MAX_SIZE = 10
"""Connections of a pool the adapter creates, unless told otherwise or grown for
the workers' concurrency (see :meth:`PostgresStateAdapter.expect_concurrency`)."""

WORKER_OWN_CONNECTIONS = 3
"""Connections a grown pool keeps beyond the workers' jobs: acquisitions, batched
completions and reaping run besides the jobs' transactions."""

CLOSE_TIMEOUT = 5.0
"""Seconds :meth:`PostgresStateAdapter.close` waits for a pool of its own to close
gracefully before dropping its connections."""

_CLOSE_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, *DRIVER_ERRORS)

DEFAULT_ACQUIRE_TIMEOUT = 30.0
"""Seconds an operation waits for a free connection of the pool."""

# How often the lock of blocker chains is retried when they keep continuing meanwhile.
_BLOCKER_LOCK_ROUNDS = 20


class PostgresStateAdapter(StateAdapter[PostgresTx]):
    """State adapter over an asyncpg pool.

    The caller's transaction is an asyncpg connection inside
    ``conn.transaction()``; operations given ``tx=None`` run as single
    statements on a pooled connection (each one its own transaction). Every
    operation is one round trip; completions and continuations without a
    transaction that run at the same time share one statement, each call still
    getting the outcome of its own job. Tables live in ``schema`` (default
    ``"queuert"``), named ``<table_prefix>jobs`` and ``<table_prefix>migrations``.

    Bound to a :class:`~queuert_postgres.PostgresNotifyAdapter` on the same
    database (one connecting with the same DSN, or publishing through this
    adapter's pool), every write NOTIFYs its job-scheduled and chain-completed
    signals itself, in its own statement: they leave when its transaction
    commits, without a round trip of their own.

    Connections: every operation waits at most ``acquire_timeout`` seconds for a
    connection of the pool (then :class:`~queuert.errors.TransientStateError`). A
    task inside one of the adapter's transactions should pass it as ``tx=``: an
    operation without ``tx=`` (or a second ``transaction()``) from that task needs a
    second connection while holding one, and raises
    :class:`~queuert.errors.AdapterError` at once when the pool has none free,
    rather than wait (a pool full of such tasks would never free one).

    Sharing the pool: the adapter holds a connection only for the duration of one
    operation or transaction, never idle. A pool the adapter creates resets every
    connection on release (asyncpg's reset query) except those that ran only the
    adapter's own statements, so the application may acquire connections from
    :attr:`pool` too; a pool of the application's keeps its own reset.

    Timestamps come from the server clock (``statement_timestamp()``, the start of
    the current statement) and are returned timezone-aware.

    Raises :class:`~queuert.errors.ConfigurationError` for an invalid schema or
    prefix; operations raise :class:`~queuert.errors.SchemaNotMigratedError` when
    the tables are missing, :class:`~queuert.errors.TransientStateError` when the
    connection is lost or a transaction hits a serialisation failure or
    deadlock, and :class:`~queuert.errors.AdapterError` for other database errors.
    """

    capabilities = StateCapabilities(
        row_locks=True,
        concurrent_transactions=True,
        savepoints=True,
        clock_precision_ms=0.001,
        native_notify=True,
        multi_process=True,
        blockers=True,
        deduplication=True,
        concurrency_limits=True,
        schedules=True,
        rate_limits=True,
    )

    def __init__(
        self,
        pool: asyncpg.Pool[asyncpg.Record],
        *,
        schema: str = DEFAULT_SCHEMA,
        table_prefix: str = "",
        acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT,
    ) -> None:
        """Use an existing pool; :meth:`close` leaves it open."""
        if not (isinstance(acquire_timeout, int | float) and 0 < acquire_timeout < 86_400):
            raise ConfigurationError(
                f"acquire_timeout must be a number of seconds in (0, 86400), "
                f"got {acquire_timeout!r:.100}"
            )
        self._acquire_timeout = float(acquire_timeout)
        self._holders: dict[asyncio.Task[Any], int] = {}
        self._names = Names.create(schema, table_prefix)
        self._sql = Statements(self._names)
        # Signal-free, for the last write of a leased transaction (see after_commit).
        self._quiet_sql = self._sql
        self._after_commit = AfterCommitSignals()
        self._ctl: ControlStatements | None = None
        self._blocker_sql = BlockerStatements(self._names)
        self._dedup_sql = DedupStatements(self._names, self._sql.chain_cols, self._sql.chain_from)
        self._pool = pool
        self._dsn: str | None = None
        self._owns_pool = False
        self._reopen: Callable[[int], Awaitable[_Pool]] | None = None
        self._expected_jobs = 0
        self._old_pools: list[_Pool] = []
        self._closed = False
        self._continuations: Batcher[tuple[Lease, NewJob], asyncpg.Record] = Batcher(
            self._continue_many, key=lambda item: item[0].job_id
        )
        self._completions: Batcher[tuple[Lease, str], asyncpg.Record] = Batcher(
            self._complete_many, key=lambda item: item[0].job_id
        )

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        table_prefix: str = "",
        min_size: int = 1,
        max_size: int | None = None,
        **pool_options: Any,
    ) -> PostgresStateAdapter:
        """Create an adapter with a pool of its own (closed by :meth:`close`).

        ``pool_options`` go to :func:`asyncpg.create_pool` (and ``acquire_timeout``
        to the adapter). Without ``max_size`` the pool starts with
        ``DEFAULT_MAX_SIZE`` connections at most and grows with the concurrency of
        the workers started on it (:meth:`expect_concurrency`). Connections are
        :class:`~queuert_postgres.connections.LendingConnection` (a
        ``connection_class`` of your own should subclass it; any other gets asyncpg's
        reset on every release). Raises
        :class:`~queuert.errors.ConfigurationError` for invalid options and
        :class:`~queuert.errors.TransientStateError` when the server cannot be reached.
        """
        Names.create(schema, table_prefix)  # validate before connecting
        query = dict(parse_qsl(urlsplit(dsn).query))
        if "application_name" not in query:
            settings = dict(pool_options.pop("server_settings", None) or {})
            settings.setdefault("application_name", "queuert")
            pool_options["server_settings"] = settings
        acquire_timeout = pool_options.pop("acquire_timeout", DEFAULT_ACQUIRE_TIMEOUT)
        pool_options.setdefault("connection_class", LendingConnection)
        pool_options.setdefault("reset", reset_on_release)

        def create_pool(size: int) -> Awaitable[_Pool]:
            return asyncpg.create_pool(dsn, min_size=min_size, max_size=size, **pool_options)

        size = max(DEFAULT_MAX_SIZE, min_size) if max_size is None else max_size
        try:
            pool = await create_pool(size)
        except (ValueError, TypeError) as exc:
            # The driver's message may quote the DSN: redact it, and do not chain it.
            raise ConfigurationError(
                f"invalid PostgreSQL connection options for {redact(dsn)!r}: "
                f"{redact_message(str(exc), dsn)}"
            ) from None
        except DRIVER_ERRORS as exc:
            raise translate(exc, schema=schema) from exc
        try:
            adapter = cls(
                pool, schema=schema, table_prefix=table_prefix, acquire_timeout=acquire_timeout
            )
        except BaseException:
            await pool.close()
            raise
        adapter._dsn = dsn
        adapter._owns_pool = True
        if max_size is None:
            adapter._reopen = create_pool
        return adapter

    @classmethod
    async def from_url(cls, url: str) -> PostgresStateAdapter:
        """Create an adapter from ``postgresql://`` (or ``postgres://``) URL.

        Besides asyncpg's own parameters the query may hold ``schema``,
        ``table_prefix``, ``min_size`` and ``max_size``.
        """
        dsn, options = split_url(url, options=URL_OPTIONS)
        return await cls.connect(
            dsn,
            schema=options.get("schema", DEFAULT_SCHEMA),
            table_prefix=options.get("table_prefix", ""),
            min_size=int_option(url, options, "min_size", 1, 0),
            max_size=(
                int_option(url, options, "max_size", DEFAULT_MAX_SIZE, 1)
                if "max_size" in options
                else None
            ),
        )

    @property
    def pool(self) -> asyncpg.Pool[asyncpg.Record]:
        """The pool. The adapter holds its connections only while an operation or
        transaction runs; see the class docstring on sharing it."""
        return self._pool

    @property
    def schema(self) -> str:
        return self._names.schema

    @property
    def table_prefix(self) -> str:
        return self._names.table_prefix

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._completions.cancel_pending()
        self._continuations.cancel_pending()
        pools = [self._pool] if self._owns_pool else []
        pools += self._old_pools
        self._old_pools = []
        for pool in pools:
            await self._close_pool(pool)

    async def _close_pool(self, pool: _Pool) -> None:
        """Close ``pool`` gracefully within ``CLOSE_TIMEOUT`` seconds, else drop its
        connections (a connection the server ended mid-statement can keep asyncpg's
        graceful close waiting)."""
        try:
            await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT)
        except _CLOSE_ERRORS as exc:
            logger.warning("closing the PostgreSQL pool gracefully failed (%r): terminating", exc)
            pool.terminate()

    def bind_notify(self, notify: NotifyAdapter) -> bool:
        """Accept a :class:`~queuert_postgres.PostgresNotifyAdapter` that connects with
        this adapter's DSN or publishes through its pool (so NOTIFYs sent here reach
        its listeners); decline any other notifier, and a second one with other
        channels."""
        if not isinstance(notify, PostgresNotifyAdapter):
            return False
        same_database = (self._dsn is not None and notify.dsn == self._dsn) or (
            notify.publish_pool is not None
            and any(notify.publish_pool is pool for pool in (self._pool, *self._old_pools))
        )
        if not same_database:
            return False
        scheduled, completed, _ = notify.channels
        signals = SignalChannels(scheduled=scheduled, chain_completed=completed)
        if self._sql.signals is not None:
            return self._sql.signals == signals
        self._sql = Statements(self._names, signals)
        self._after_commit.bind(notify)
        return True

    # -- plumbing ---------------------------------------------------------------

    def _raise(self, exc: BaseException, conn: object = None) -> NoReturn:
        raise translate(exc, schema=self._names.schema, conn=conn) from exc

    async def _fetch(self, tx: PostgresTx | None, sql: str, *args: Any) -> list[asyncpg.Record]:
        if tx is None:
            async with self._own_connection() as conn:
                try:
                    return await conn.fetch(sql, *args)
                except DRIVER_ERRORS as exc:
                    self._raise(exc, conn)
        try:
            return await tx.fetch(sql, *args)
        except DRIVER_ERRORS as exc:
            self._raise(exc, tx)

    async def _fetchrow(self, tx: PostgresTx | None, sql: str, *args: Any) -> asyncpg.Record | None:
        if tx is None:
            async with self._own_connection() as conn:
                try:
                    return await conn.fetchrow(sql, *args)
                except DRIVER_ERRORS as exc:
                    self._raise(exc, conn)
        try:
            return await tx.fetchrow(sql, *args)
        except DRIVER_ERRORS as exc:
            self._raise(exc, tx)

    def _holds_transaction(self) -> bool:
        task = asyncio.current_task()
        return task is not None and task in self._holders

    def _nested_error(self) -> AdapterError:
        return AdapterError(
            "this task holds a transaction of this PostgresStateAdapter and asked for a "
            "second connection (an operation without tx=, or another transaction) while "
            f"the pool has none free (max_size={self._pool.get_max_size()}): pass the "
            "transaction as tx= instead"
        )

    def _check_not_holding(self) -> None:
        """Refuse at once, when the pool has no free connection, what a task holding
        one of this adapter's transactions asks for a second one: waiting could last
        forever (every holder waiting for another's connection)."""
        if self._holds_transaction() and _pool_is_short(self._pool):
            raise self._nested_error()

    async def _acquire(self) -> tuple[_Pool, PoolConnectionProxy[asyncpg.Record]]:
        """The pool and a connection of it, within ``acquire_timeout``; a connection the
        server closed while idle is replaced by the pool (it checks before handing one
        out). The connection goes back to that pool (:attr:`pool` may have been
        replaced meanwhile)."""
        self._check_not_holding()
        pool = self._pool
        try:
            return pool, await pool.acquire(timeout=self._acquire_timeout)
        except TimeoutError as exc:
            if self._holds_transaction():
                raise self._nested_error() from exc
            raise TransientStateError(
                f"no PostgreSQL connection of the pool became free within "
                f"{self._acquire_timeout:g} s (max_size={self._pool.get_max_size()})"
            ) from exc
        except DRIVER_ERRORS as exc:
            self._raise(exc)

    async def _release(self, pool: _Pool, conn: PoolConnectionProxy[asyncpg.Record]) -> None:
        try:
            await pool.release(conn, timeout=self._acquire_timeout)
        except DRIVER_ERRORS as exc:
            # The pool terminated the connection; the operation itself is done.
            logger.debug("releasing a PostgreSQL connection failed: %r", exc)

    @asynccontextmanager
    async def _own_connection(self) -> AsyncIterator[PostgresTx]:
        """A connection for one statement of the adapter's own (its own transaction),
        released without a reset when the statement succeeded."""
        pool, conn = await self._acquire()
        try:
            yield conn
        except BaseException:
            # A failed or cancelled statement may leave the connection in any state:
            # the pool resets (or replaces) it on release.
            await self._release(pool, conn)
            raise
        mark_clean(conn)
        await self._release(pool, conn)

    # -- transactions -----------------------------------------------------------

    def transaction(self) -> AbstractAsyncContextManager[PostgresTx]:
        return self._transaction(None)

    def leased_transaction(
        self, *, lease: Lease, lock: bool
    ) -> AbstractAsyncContextManager[PostgresTx]:
        """As the port says: the lease is checked (and the job locked with ``lock``)
        by the transaction's first statement."""
        return self._transaction((lease, lock))

    @asynccontextmanager
    async def _transaction(self, leased: tuple[Lease, bool] | None) -> AsyncIterator[PostgresTx]:
        task = asyncio.current_task()
        pool, conn = await self._acquire()
        if task is not None:
            self._holders[task] = self._holders.get(task, 0) + 1
        signals = None if leased is None else self._after_commit.open(conn)
        try:
            async with self._block(conn):
                if leased is not None:
                    lease, lock = leased
                    await (self.lock_job if lock else self.verify_lease)(tx=conn, lease=lease)
                yield conn
        finally:
            if signals is not None:
                self._after_commit.close(conn)
            if task is not None:
                left = self._holders.pop(task) - 1
                if left:
                    self._holders[task] = left
            await self._release(pool, conn)
        if signals:  # committed
            self._after_commit.send(signals)

    def savepoint(self, *, tx: PostgresTx) -> AbstractAsyncContextManager[PostgresTx]:
        return self._block(tx)

    @asynccontextmanager
    async def _block(self, conn: PostgresTx) -> AsyncIterator[PostgresTx]:
        # A transaction, or a savepoint when conn is already in one. Driver errors of
        # BEGIN/COMMIT are translated; errors raised by the block pass unchanged.
        try:
            transaction = conn.transaction()
            await transaction.start()
        except DRIVER_ERRORS as exc:
            self._raise(exc, conn)
        try:
            yield conn
        except BaseException:
            # The original error matters more than a failed rollback on a dead connection.
            with suppress(*DRIVER_ERRORS):
                await transaction.rollback()
            raise
        try:
            await transaction.commit()
        except DRIVER_ERRORS as exc:
            self._raise(exc, conn)

    # -- schema -------------------------------------------------------------------

    async def migrate(self) -> None:
        """Create the schema and tables or apply the missing steps, in one transaction
        under an advisory lock; concurrent callers wait and then find nothing to do."""
        try:
            async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
                await migrations.migrate(conn, self._names)
        except DRIVER_ERRORS as exc:
            self._raise(exc)

    async def check_schema(self) -> None:
        names = self._names
        where = f'PostgreSQL schema "{names.schema}"' + (
            f' (table prefix "{names.table_prefix}")' if names.table_prefix else ""
        )
        try:
            async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
                versions = await migrations.applied_versions(conn, names)
                absent = await migrations.missing_tables(conn, names)
        except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError) as exc:
            raise SchemaNotMigratedError(f"{where} has no queuert tables: {MIGRATE_HINT}") from exc
        except DRIVER_ERRORS as exc:
            self._raise(exc)
        newer = [v for v in versions if v > migrations.LATEST_VERSION]
        if newer:
            raise SchemaTooNewError(
                f"{where} is at version {max(newer)}, newer than the version "
                f"{migrations.LATEST_VERSION} this queuert-postgres knows: upgrade queuert-postgres"
            )
        missing = [m.version for m in migrations.MIGRATIONS if m.version not in versions]
        if missing:
            raise SchemaNotMigratedError(
                f"{where} is at version {max(versions, default=0)} but this queuert-postgres "
                f"needs version {migrations.LATEST_VERSION}: {MIGRATE_HINT}"
            )
        if absent:
            raise SchemaDamagedError(
                f"{where} records version {max(versions)} but its table(s) "
                f"{', '.join(absent)} are missing; migrate() does not recreate tables of "
                "recorded versions: restore them or migrate into a new schema"
            )

    # -- writing jobs -------------------------------------------------------------

    async def create_jobs(
        self, *, tx: PostgresTx | None, jobs: Sequence[NewJob]
    ) -> Sequence[JobRecord]:
        if not jobs:
            return []
        if any(j.concurrency_key is not None for j in jobs):
            row = await self._fetchrow(
                tx,
                limit_statements(self._sql).create_keyed_jobs,
                *(list(column) for column in zip(*map(new_job_args, jobs), strict=True)),
                [j.concurrency_key for j in jobs],
            )
        elif len(jobs) == 1:
            row = await self._fetchrow(tx, self._sql.create_job, *new_job_args(jobs[0]))
        elif alike_chain_starts(jobs):
            row = await self._fetchrow(
                tx,
                self._sql.create_chain_starts,
                [j.id for j in jobs],
                [j.input for j in jobs],
                *shared_fields(jobs[0]),
            )
        else:
            row = await self._fetchrow(
                tx,
                self._sql.create_jobs,
                [j.id for j in jobs],
                [j.chain_id for j in jobs],
                [j.chain_name for j in jobs],
                [j.queue for j in jobs],
                [j.position for j in jobs],
                [j.input for j in jobs],
                [j.max_attempts for j in jobs],
                [j.priority for j in jobs],
                [j.scheduled_at for j in jobs],
                [j.delay_ms for j in jobs],
                [j.trace_context for j in jobs],
            )
        assert row is not None
        now: datetime = row[0]

        def scheduled_at(job: NewJob) -> datetime:
            # What the statement stored: COALESCE(scheduled_at, now + delay_ms).
            if job.scheduled_at is None:
                return now + timedelta(milliseconds=job.delay_ms)
            return job.scheduled_at.astimezone(now.tzinfo)

        return CreatedRecords(jobs, created_at=now, scheduled_at=scheduled_at)

    async def acquire_jobs(
        self,
        *,
        tx: PostgresTx | None,
        queues: Sequence[str],
        limit: int,
        owner: str,
        lease_ms: int,
    ) -> list[JobRecord]:
        if limit <= 0 or not queues:
            return []
        rows = await self._fetch(
            tx, self._sql.acquire_jobs, list(dict.fromkeys(queues)), limit, owner, lease_ms
        )
        jobs = [job_record(row) for row in rows]
        jobs.sort(key=lambda j: (j.scheduled_at, -j.priority, j.id))
        return jobs

    async def renew_lease(self, *, tx: PostgresTx | None, lease: Lease, lease_ms: int) -> datetime:
        row = await self._fetchrow(
            tx, self._sql.renew_lease, lease.job_id, lease.owner, lease.attempt, lease_ms
        )
        if row is None:
            raise LeaseLostError(lease.job_id)
        leased_until: datetime = row[0]
        return leased_until

    async def lock_job(self, *, tx: PostgresTx, lease: Lease) -> JobRecord:
        row = await self._fetchrow(tx, self._sql.lock_job, lease.job_id, lease.owner, lease.attempt)
        if row is None:
            raise LeaseLostError(lease.job_id)
        return job_record(row)

    async def verify_lease(self, *, tx: PostgresTx, lease: Lease) -> JobRecord:
        row = await self._fetchrow(
            tx, self._sql.verify_lease, lease.job_id, lease.owner, lease.attempt
        )
        if row is None:
            raise LeaseLostError(lease.job_id)
        return job_record(row)

    async def complete_job(self, *, tx: PostgresTx | None, lease: Lease, output: str) -> JobRecord:
        if tx is None:
            # Completions running at the same time share one statement (see batching).
            self._check_not_holding()
            row = await self._completions.submit((lease, output))
        else:
            row = await self._fetchrow(
                tx, self._sql.complete_job, lease.job_id, lease.owner, lease.attempt, output
            )
        if row is None:
            raise LeaseLostError(lease.job_id)
        return completed_record(row)

    async def complete_locked_job(
        self, *, tx: PostgresTx, lease: Lease, output: str
    ) -> JobRecord | None:
        """As the port says; in a leased transaction of this adapter, the signals (the
        chain's completion, the jobs it unblocked) are sent after the commit (see
        :mod:`queuert_postgres.after_commit`)."""
        signals = self._after_commit.held(tx)
        if signals is None:
            return await self.complete_job(tx=tx, lease=lease, output=output)
        row = await self._fetchrow(
            tx, self._quiet_sql.complete_job, lease.job_id, lease.owner, lease.attempt, output
        )
        if row is None:
            raise LeaseLostError(lease.job_id)
        record = completed_record(row)
        signals.append(("chain", record.chain_id))
        signals.extend(("scheduled", queue) for queue in record.unblocked_queues)
        return record

    async def _complete_many(
        self, items: Sequence[tuple[Lease, str]]
    ) -> dict[str, asyncpg.Record | Exception]:
        if len(items) == 1:
            lease, output = items[0]
            row = await self._fetchrow(
                None, self._sql.complete_job, lease.job_id, lease.owner, lease.attempt, output
            )
            return {} if row is None else {lease.job_id: row}
        rows = await self._fetch(
            None,
            self._sql.complete_jobs,
            [lease.job_id for lease, _ in items],
            [lease.owner for lease, _ in items],
            [lease.attempt for lease, _ in items],
            [output for _, output in items],
        )
        return {row[0]: row for row in rows}

    async def continue_job(
        self, *, tx: PostgresTx | None, lease: Lease, next_job: NewJob
    ) -> JobRecord:
        if tx is None and next_job.concurrency_key is None:
            # Continuations running at the same time share one statement (see batching).
            self._check_not_holding()
            row = await self._continuations.submit((lease, next_job))
        else:
            row = await self._continue_one(tx, lease, next_job)
        if row is None:
            raise LeaseLostError(lease.job_id)
        return job_record(row)

    async def continue_locked_job(self, *, tx: PostgresTx, lease: Lease, next_job: NewJob) -> None:
        """As the port says; in a leased transaction of this adapter, the job-scheduled
        signal is sent after the commit (see :mod:`queuert_postgres.after_commit`)."""
        signals = self._after_commit.held(tx)
        if signals is None:
            await self.continue_job(tx=tx, lease=lease, next_job=next_job)
            return
        if await self._continue_one(tx, lease, next_job, quiet=True) is None:
            raise LeaseLostError(lease.job_id)
        signals.append(("scheduled", next_job.queue))

    async def _continue_one(
        self, tx: PostgresTx | None, lease: Lease, next_job: NewJob, *, quiet: bool = False
    ) -> asyncpg.Record | None:
        sql = self._quiet_sql if quiet else self._sql
        statement = sql.continue_job
        key: tuple[str, ...] = ()
        if next_job.concurrency_key is not None:
            # One statement on its own: atomic without a transaction around it.
            statement = keyed_job_statements(sql).continue_keyed_job
            key = (next_job.concurrency_key,)
        try:
            return await self._fetchrow(
                tx,
                statement,
                lease.job_id,
                lease.owner,
                lease.attempt,
                *new_job_args(next_job),
                *key,
            )
        except QueuertError as exc:
            cause = exc.__cause__
            if (
                isinstance(cause, asyncpg.UniqueViolationError)
                and cause.constraint_name == self._names.table_prefix + "jobs_chain_position_key"
            ):
                # The chain already has a job at that position: it moved on without us.
                raise LeaseLostError(
                    lease.job_id,
                    f"job {lease.job_id!r} cannot continue its chain {next_job.chain_id!r}: "
                    f"position {next_job.position} is already taken",
                ) from cause
            raise

    async def _continue_many(
        self, items: Sequence[tuple[Lease, NewJob]]
    ) -> dict[str, asyncpg.Record | Exception]:
        if len(items) > 1:
            try:
                columns = zip(*(continue_args(*item) for item in items), strict=True)
                rows = await self._fetch(None, self._sql.continue_jobs, *map(list, columns))
            except QueuertError as exc:
                if not isinstance(exc.__cause__, asyncpg.UniqueViolationError):
                    raise
                # One of them clashes: find out which by running each on its own.
            else:
                by_new_id = {row[0]: row for row in rows}
                return {
                    lease.job_id: by_new_id[job.id] for lease, job in items if job.id in by_new_id
                }
        results: dict[str, asyncpg.Record | Exception] = {}
        for lease, job in items:
            try:
                row = await self._continue_one(None, lease, job)
            except QueuertError as exc:
                results[lease.job_id] = exc
            else:
                if row is not None:
                    results[lease.job_id] = row
        return results

    async def reschedule_job(
        self,
        *,
        tx: PostgresTx | None,
        lease: Lease,
        error: JobError | None,
        delay_ms: int = 0,
        scheduled_at: datetime | None = None,
        refund_attempt: bool = False,
    ) -> JobRecord:
        row = await self._fetchrow(
            tx,
            self._sql.reschedule_job,
            lease.job_id,
            lease.owner,
            lease.attempt,
            scheduled_at,
            delay_ms,
            None if error is None else error.to_json(),
            1 if refund_attempt else 0,
        )
        if row is None:
            raise LeaseLostError(lease.job_id)
        return job_record(row)

    async def fail_job(self, *, tx: PostgresTx | None, lease: Lease, error: JobError) -> JobRecord:
        row = await self._fetchrow(
            tx, self._sql.fail_job, lease.job_id, lease.owner, lease.attempt, error.to_json()
        )
        if row is None:
            raise LeaseLostError(lease.job_id)
        return job_record(row)

    async def reap_expired_leases(self, *, tx: PostgresTx | None, limit: int) -> list[JobRecord]:
        if limit <= 0:
            return []
        rows = await self._fetch(tx, self._sql.reap_expired_leases, limit, _LEASE_EXPIRED_JSON)
        return [job_record(row) for row in rows]

    async def cancel_chain(self, *, tx: PostgresTx | None, chain_id: str) -> ChainRecord | None:
        row = await self._fetchrow(tx, self._sql.cancel_chain, chain_id)
        if row is None:
            # Either no such chain, or its last job was continued while we waited for
            # its lock (the new last job is newer than this statement's snapshot).
            return await self.get_chain(tx=tx, chain_id=chain_id)
        return chain_record(row)

    async def time_until_next_job(
        self, *, tx: PostgresTx | None, queues: Sequence[str]
    ) -> float | None:
        if not queues:
            return None
        row = await self._fetchrow(tx, self._sql.time_until_next_job, list(dict.fromkeys(queues)))
        if row is None or row[0] is None:
            return None
        return max(0.0, float(row[0]))

    # -- reading -------------------------------------------------------------------

    async def get_job(self, *, tx: PostgresTx | None, job_id: str) -> JobRecord | None:
        row = await self._fetchrow(tx, self._sql.get_job, job_id)
        return None if row is None else job_record(row)

    async def list_jobs(
        self, *, tx: PostgresTx | None, filter: JobFilter, after: str | None, limit: int
    ) -> Page[JobRecord]:
        if limit <= 0:
            return Page()
        args: list[Any] = []
        if after is not None:
            args.append(after)
        if filter.statuses is not None:
            args.append([JobStatus(s).value for s in filter.statuses])
        if filter.chain_id is not None:
            args.append(filter.chain_id)
        if filter.queues is not None:
            args.append(list(filter.queues))
        args += [t for t in (filter.created_after, filter.created_before) if t is not None]
        sql = self._sql.list_jobs(
            after=after is not None,
            statuses=filter.statuses is not None,
            chain_id=filter.chain_id is not None,
            queues=filter.queues is not None,
            created_after=filter.created_after is not None,
            created_before=filter.created_before is not None,
            newest=filter.newest_first,
        )
        rows = await self._fetch(tx, sql, *args, limit)
        items = [job_record(row) for row in rows]
        return keyset_page(items, limit)

    async def get_chain(self, *, tx: PostgresTx | None, chain_id: str) -> ChainRecord | None:
        row = await self._fetchrow(tx, self._sql.get_chain, chain_id)
        return None if row is None else chain_record(row)

    async def list_chains(
        self, *, tx: PostgresTx | None, filter: ChainFilter, after: str | None, limit: int
    ) -> Page[ChainRecord]:
        if limit <= 0:
            return Page()
        if filter.dedup_key is not None:
            return await self._list_chains_by_key(tx, filter, after, limit)
        args: list[Any] = []
        if after is not None:
            args.append(after)
        if filter.statuses is not None:
            args.append([JobStatus(s).value for s in filter.statuses])
        if filter.chain_names is not None:
            args.append(list(filter.chain_names))
        args += [t for t in (filter.created_after, filter.created_before) if t is not None]
        if filter.queues is not None:
            args.append(list(filter.queues))
        sql = self._sql.list_chains(
            after=after is not None,
            statuses=filter.statuses is not None,
            chain_names=filter.chain_names is not None,
            created_after=filter.created_after is not None,
            created_before=filter.created_before is not None,
            newest=filter.newest_first,
            queues=filter.queues is not None,
        )
        rows = await self._fetch(tx, sql, *args, limit)
        items = [chain_record(row) for row in rows]
        return keyset_page(items, limit)

    async def delete_chains(self, *, tx: PostgresTx | None, chain_ids: Sequence[str]) -> int:
        if not chain_ids:
            return 0
        row = await self._fetchrow(tx, self._sql.delete_chains, list(chain_ids))
        return 0 if row is None else int(row[0])

    async def expect_concurrency(self, *, jobs: int) -> None:
        """Grow a pool this adapter created without an explicit ``max_size`` to hold
        a connection for every job the started workers may run at once (``jobs``
        summed over workers) plus ``WORKER_OWN_CONNECTIONS``. asyncpg pools have a
        fixed size, so a larger pool replaces the current one: :attr:`pool` returns
        the new one; the old one stays open for whoever holds it (a notifier
        publishing through it), its idle connections expiring, until :meth:`close`. A
        pool given to the adapter, or created with ``max_size``, is left as it is;
        so is the pool when the new one cannot be opened (logged)."""
        self._expected_jobs += max(0, int(jobs))
        wanted = self._expected_jobs + WORKER_OWN_CONNECTIONS
        if self._reopen is None or self._closed or wanted <= self._pool.get_max_size():
            return
        try:
            pool = await self._reopen(wanted)
        except DRIVER_ERRORS as exc:
            logger.warning(
                "could not grow the PostgreSQL pool to %d connections, keeping %d: %r",
                wanted,
                self._pool.get_max_size(),
                exc,
            )
            return
        if self._is_closed():  # closed while the new pool opened
            await pool.close()
            return
        # The old pool stays open for whoever holds it (a notifier publishing through
        # it, the application); its idle connections expire, and it closes with the
        # adapter.
        self._old_pools.append(self._pool)
        self._pool = pool

    def _is_closed(self) -> bool:
        return self._closed

    async def caller_transaction(self, tx: object) -> PostgresTx:
        """An asyncpg connection as it is; an SQLAlchemy ``AsyncSession`` or
        ``AsyncConnection`` (``postgresql+asyncpg``) of this database as its asyncpg
        connection, in its transaction (see :mod:`queuert_postgres.caller_tx`)."""
        return await caller_connection(self, tx)

    def sync_transaction(self, conn: object) -> PostgresTx:
        """A psycopg 3 ``Connection`` (the ``psycopg`` extra) in its transaction, for
        :mod:`queuert.sync` (see :mod:`queuert_postgres.psycopg_sync`)."""
        return sync_connection(self, conn)

    # -- control from outside a worker (SQL in queuert_postgres.control) -----------------

    def _control(self) -> ControlStatements:
        # Rebuilt when bind_notify replaced the statements (their signal channels).
        if self._ctl is None or self._ctl.sql is not self._sql:
            self._ctl = ControlStatements(self._sql)
        return self._ctl

    @asynccontextmanager
    async def _unit(self, tx: PostgresTx | None) -> AsyncIterator[PostgresTx]:
        """Several statements as one unit: a transaction of the adapter's own, or a
        savepoint inside ``tx``; driver errors of the statements are translated."""
        try:
            if tx is None:
                async with self.transaction() as conn:
                    yield conn
            else:
                async with self._block(tx) as conn:
                    yield conn
        except DRIVER_ERRORS as exc:
            self._raise(exc)

    async def revoke_chain(self, *, tx: PostgresTx | None, chain_id: str) -> RevokedChain:
        return await postgres_control.revoke_chain(self, self._control(), tx, chain_id)

    async def resume_job(self, *, tx: PostgresTx | None, job_id: str) -> JobRecord:
        return await postgres_control.resume_job(self, self._control(), tx, job_id)

    async def settle_job(
        self, *, tx: PostgresTx | None, job_id: str, output: str | None, next_job: NewJob | None
    ) -> SettledJob:
        return await postgres_control.settle_job(
            self, self._control(), tx, job_id, output, next_job, new_job_args
        )

    async def purge_chains(
        self,
        *,
        tx: PostgresTx | None,
        ended_before: datetime,
        statuses: Sequence[JobStatus],
        limit: int,
    ) -> int:
        names = [JobStatus(s).value for s in statuses]
        row = await self._fetchrow(tx, self._control().purge, names, ended_before, limit)
        return 0 if row is None else int(row[0])

    async def record_worker(
        self, *, tx: PostgresTx | None, worker: WorkerInfo, forget_ms: int
    ) -> None:
        await self._fetchrow(
            tx,
            self._control().record_worker,
            worker.id,
            worker.host,
            worker.pid,
            list(worker.queues),
            worker.concurrency,
            worker.purges,
            forget_ms,
        )

    async def remove_worker(self, *, tx: PostgresTx | None, worker_id: str) -> None:
        await self._fetch(tx, self._control().remove_worker, worker_id)

    async def list_workers(self, *, tx: PostgresTx | None) -> list[WorkerRecord]:
        rows = await self._fetch(tx, self._control().list_workers)
        return [postgres_control.worker_record(row) for row in rows]

    async def count_jobs(self, *, tx: PostgresTx | None) -> QueueCounts:
        rows = await self._fetch(tx, self._control().count_jobs)
        return postgres_control.queue_counts(rows)

    async def queue_position(self, *, tx: PostgresTx | None, job_id: str) -> QueuePosition | None:
        row = await self._fetchrow(tx, self._control().queue_position, job_id)
        if row is None:
            return None
        extra = JOB_COLUMN_COUNT  # the statement's own columns follow the job's
        return QueuePosition(job=job_record(row), now=row[extra], ahead=int(row[extra + 1]))

    async def schema_sql(self) -> list[str]:
        return migrations.script(self._names)

    # -- the caller's transaction --------------------------------------------------

    async def is_transaction_open(self, *, tx: PostgresTx) -> bool:
        """asyncpg's ``is_in_transaction()`` on an open connection; ``False`` for a
        closed one or a pool proxy already released."""
        return tx_checks.is_open(tx)

    async def check_transaction(self, *, tx: object) -> PostgresTx:
        """Accept an asyncpg connection (or pool proxy) inside an open transaction;
        raise :class:`~queuert.errors.InvalidTransactionError` for another type and
        :class:`~queuert.errors.TransactionClosedError` for one that is closed,
        released or not in a transaction."""
        return tx_checks.checked(tx)

    # -- blockers -------------------------------------------------------------------

    def _atomic(self, tx: PostgresTx | None) -> AbstractAsyncContextManager[PostgresTx]:
        """A transaction of the adapter's own, or a savepoint in ``tx``."""
        return self._transaction(None) if tx is None else self._block(tx)

    async def create_blocked_jobs(
        self,
        *,
        tx: PostgresTx | None,
        jobs: Sequence[NewJob],
        blocker_chain_ids: Sequence[str],
        run_on_blocker_failure: bool = False,
    ) -> Sequence[JobRecord]:
        async with self._atomic(tx) as conn:
            statuses = await self._lock_blocker_chains(conn, blocker_chain_ids)
            await self.create_jobs(tx=conn, jobs=jobs)
            ids = [j.id for j in jobs]
            return await self._wait_on(
                conn, ids, blocker_chain_ids, statuses, run_on_blocker_failure
            )

    async def continue_blocked_job(
        self,
        *,
        tx: PostgresTx | None,
        lease: Lease,
        next_job: NewJob,
        blocker_chain_ids: Sequence[str],
        run_on_blocker_failure: bool = False,
    ) -> JobRecord:
        async with self._atomic(tx) as conn:
            statuses = await self._lock_blocker_chains(conn, blocker_chain_ids)
            await self.continue_job(tx=conn, lease=lease, next_job=next_job)
            (record,) = await self._wait_on(
                conn, [next_job.id], blocker_chain_ids, statuses, run_on_blocker_failure
            )
            return record

    async def _lock_blocker_chains(
        self, conn: PostgresTx, chain_ids: Sequence[str]
    ) -> dict[str, str]:
        """The status of each chain's last job, share-locked until ``conn``'s
        transaction ends. Raises JobNotFoundError (through initial_wait) for a chain
        that does not exist."""
        sql = self._blocker_sql
        statuses: dict[str, str] = {}
        wanted = sorted(set(chain_ids))
        for _ in range(_BLOCKER_LOCK_ROUNDS):
            rows = await self._fetch(conn, sql.lock_chain_heads, wanted)
            statuses.update((row[0], row[1]) for row in rows)
            wanted = [chain_id for chain_id in wanted if chain_id not in statuses]
            if not wanted:
                return statuses
            existing = {row[0] for row in await self._fetch(conn, sql.existing_chains, wanted)}
            missing = [c for c in chain_ids if c not in statuses and c not in existing]
            if missing:
                raise JobNotFoundError(f"blocker chain {missing[0]!r} does not exist")
            # The rest continued while this waited for their locks: read their new ends.
        raise TransientStateError("blocker chains kept moving on while being locked; retry")

    async def _wait_on(
        self,
        conn: PostgresTx,
        job_ids: list[str],
        blocker_chain_ids: Sequence[str],
        statuses: dict[str, str],
        run_on_failure: bool,
    ) -> list[JobRecord]:
        status, left, error = initial_wait(statuses, blocker_chain_ids, run_on_failure)
        sql = self._blocker_sql
        await self._fetch(conn, sql.insert_blockers, job_ids, list(blocker_chain_ids))
        rows = await self._fetch(
            conn,
            sql.set_waiting,
            job_ids,
            status.value,
            left,
            None if error is None else error.to_json(),
            run_on_failure,
        )
        by_id = {record.id: record for record in map(job_record, rows)}
        return [by_id[job_id] for job_id in job_ids]

    async def get_blockers(self, *, tx: PostgresTx | None, job_id: str) -> list[BlockerRecord]:
        rows = await self._fetch(tx, self._blocker_sql.get_blockers, job_id)
        return [
            BlockerRecord(chain_id=r[0], chain_name=r[1], status=JobStatus(r[2]), output=r[3])
            for r in rows
        ]

    async def list_dependent_chains(
        self, *, tx: PostgresTx | None, chain_ids: Sequence[str]
    ) -> list[str]:
        if not chain_ids:
            return []
        rows = await self._fetch(tx, self._blocker_sql.dependent_chains, list(chain_ids))
        return [row[0] for row in rows]

    # -- deduplication ---------------------------------------------------------------

    async def create_deduplicated_jobs(
        self,
        *,
        tx: PostgresTx | None,
        jobs: Sequence[NewJob],
        dedup: Sequence[DedupKey],
        blocker_chain_ids: Sequence[str] | None = None,
        run_on_blocker_failure: bool = False,
    ) -> list[str]:
        sql = self._dedup_sql
        holders: list[str] = []
        async with self._atomic(tx) as conn:
            statuses: dict[str, str] = {}
            if blocker_chain_ids is not None:
                # Share-locked until commit, so the statuses stay true for every job.
                statuses = await self._lock_blocker_chains(conn, blocker_chain_ids)
            for job, request in zip(jobs, dedup, strict=True):
                name, key = job.chain_name, request.key
                taken = await self._fetchrow(conn, sql.insert_key, name, key, job.chain_id)
                if taken is None:
                    holder = await self._fetchrow(conn, sql.lock_key, name, key)
                    assert holder is not None  # key rows are never deleted
                    scope = request.scope.value
                    kept = await self._fetchrow(
                        conn, sql.holds_key, name, key, scope, request.window_ms
                    )
                    if kept is not None and kept[0]:
                        holders.append(holder[0])
                        continue
                    await self._fetch(conn, sql.take_over_key, name, key, job.chain_id)
                await self.create_jobs(tx=conn, jobs=[job])
                await self._fetch(conn, sql.mark_key, job.id, request.key)
                if blocker_chain_ids is not None:
                    await self._wait_on(
                        conn, [job.id], blocker_chain_ids, statuses, run_on_blocker_failure
                    )
                holders.append(job.chain_id)
        return holders

    async def _list_chains_by_key(
        self, tx: PostgresTx | None, filter: ChainFilter, after: str | None, limit: int
    ) -> Page[ChainRecord]:
        rows = await self._fetch(
            tx,
            self._dedup_sql.list_chains[filter.newest_first],
            filter.dedup_key,
            after,
            None if filter.statuses is None else [JobStatus(s).value for s in filter.statuses],
            None if filter.chain_names is None else list(filter.chain_names),
            filter.created_after,
            filter.created_before,
            limit,
            None if filter.queues is None else list(filter.queues),
        )
        return keyset_page([chain_record(row) for row in rows], limit)

    # -- limits ------------------------------------------------------------------------

    async def acquire_limited_jobs(
        self,
        *,
        tx: PostgresTx | None,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        concurrency_limit: int,
        per_key: bool,
    ) -> list[JobRecord]:
        """As the port says: one call of the schema's acquisition function (the queue's
        advisory lock, then the counting acquisition; see :mod:`queuert_postgres.limits`),
        in ``tx`` or as a transaction of its own."""
        if limit <= 0:
            return []
        rows = await self._fetch(
            tx,
            limit_statements(self._sql).acquire,
            queue,
            limit,
            owner,
            lease_ms,
            concurrency_limit,
            per_key,
            limit_lock_key(self._names, queue),
        )
        jobs = [job_record(row) for row in rows]
        jobs.sort(key=lambda j: (j.scheduled_at, -j.priority, j.id))
        return jobs

    # -- rate limits -------------------------------------------------------------------------

    async def acquire_rate_limited_jobs(
        self,
        *,
        tx: PostgresTx | None,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        rate: int,
        window_ms: int,
        per_key: bool,
        concurrency_limit: int | None,
    ) -> RateAcquisition:
        """As the port says: the queue's advisory lock (see :mod:`queuert_postgres.rates`)
        and the counting acquisition run in ``tx`` or in a transaction of their own."""
        if limit <= 0:
            return RateAcquisition()
        args = (queue, limit, owner, lease_ms, rate, window_ms, per_key, concurrency_limit)
        key = rate_lock_key(self._names, queue)
        sql = rate_statements(self._sql)
        statement = sql.acquire_under_rate if per_key else sql.acquire_under_queue_rate
        if tx is None:
            async with self._transaction(None) as conn:
                await self._fetch(conn, RATE_LOCK, key)
                rows = await self._fetch(conn, statement, *args)
        else:
            await self._fetch(tx, RATE_LOCK, key)
            rows = await self._fetch(tx, statement, *args)
        jobs = [job_record(row) for row in rows if row[0] is not None]
        jobs.sort(key=lambda j: (j.scheduled_at, -j.priority, j.id))
        held_back, next_window_ms = rows[0][JOB_COLUMN_COUNT], rows[0][JOB_COLUMN_COUNT + 1]
        return RateAcquisition(jobs, int(next_window_ms) if held_back else None)

    # -- schedules ------------------------------------------------------------------------

    async def start_scheduled_chain(
        self, *, tx: PostgresTx | None, schedule: str, slot_time: datetime, job: NewJob
    ) -> bool:
        """As the port says: a second start of a slot waits for the first one's
        transaction on the slot's key, then finds it taken."""
        sql = limit_statements(self._sql)
        if tx is None:
            async with self._transaction(None) as conn:
                return await self._start_slot(conn, sql, schedule, slot_time, job)
        return await self._start_slot(tx, sql, schedule, slot_time, job)

    async def _start_slot(
        self,
        conn: PostgresTx,
        sql: LimitStatements,
        schedule: str,
        slot_time: datetime,
        job: NewJob,
    ) -> bool:
        row = await self._fetchrow(
            conn, sql.insert_schedule_slot, schedule, slot_time, job.chain_id
        )
        if row is None:
            return False
        await self.create_jobs(tx=conn, jobs=[job])
        return True

    async def get_last_schedule_slot(
        self, *, tx: PostgresTx | None, schedule: str
    ) -> ScheduleSlot | None:
        row = await self._fetchrow(tx, limit_statements(self._sql).last_schedule_slot, schedule)
        return None if row is None else ScheduleSlot(row[0], row[1], row[2])

    async def get_chain_schedule_slot(
        self, *, tx: PostgresTx | None, chain_id: str
    ) -> ScheduleSlot | None:
        row = await self._fetchrow(tx, limit_statements(self._sql).chain_schedule_slot, chain_id)
        return None if row is None else ScheduleSlot(row[0], row[1], row[2])


def _pool_is_short(pool: asyncpg.Pool[asyncpg.Record]) -> bool:
    """Whether an acquire from ``pool`` would wait: no idle connection, no room."""
    return pool.get_idle_size() == 0 and pool.get_size() >= pool.get_max_size()


async def from_url(url: str) -> PostgresStateAdapter:
    """Entry point of the ``postgresql`` and ``postgres`` schemes of ``queuert.state``:
    see :meth:`PostgresStateAdapter.from_url`."""
    return await PostgresStateAdapter.from_url(url)
