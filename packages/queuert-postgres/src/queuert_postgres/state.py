"""The PostgreSQL state adapter."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Any, NoReturn, TypeAlias
from urllib.parse import parse_qsl, urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from queuert.batching import Batcher
from queuert.errors import (
    AdapterError,
    ConfigurationError,
    SchemaDamagedError,
    SchemaNotMigratedError,
    SchemaTooNewError,
    TransientStateError,
)
from queuert.ports.notify import NotifyAdapter
from queuert.ports.state import StateCapabilities
from queuert.records import Lease, NewJob
from queuert.urls import redact_message
from queuert_postgres import migrations, tx_checks
from queuert_postgres.admin_ops import AdminOps
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
from queuert_postgres.hand_off import HandOffOps
from queuert_postgres.job_ops import JobOps
from queuert_postgres.names import Names
from queuert_postgres.notify import PostgresNotifyAdapter
from queuert_postgres.reads import Reads
from queuert_postgres.statements import SignalChannels, Statements
from queuert_postgres.urls import int_option, redact, split_url
from queuert_postgres.workflow_ops import WorkflowOps

logger = logging.getLogger("queuert.postgres")

DEFAULT_SCHEMA = "queuert"
URL_OPTIONS = ("schema", "table_prefix", "min_size", "max_size")
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


class PostgresStateAdapter(JobOps, HandOffOps, Reads, WorkflowOps, AdminOps):
    """State adapter over an asyncpg pool.

    The caller's transaction is an asyncpg connection inside
    ``conn.transaction()``; operations given ``tx=None`` run as single
    statements on a pooled connection (each one its own transaction). Every
    operation is one round trip; completions (with or without a hand-off) and
    continuations without a transaction that run at the same time share one
    statement, each call still getting the outcome of its own job. Tables live
    in ``schema`` (default ``"queuert"``), named ``<table_prefix>jobs`` and
    ``<table_prefix>migrations``.

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
        hand_off=True,
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
        # Connections of committed transactions on their way back to their pool.
        self._releasing: set[asyncio.Task[None]] = set()
        self._continuations: Batcher[tuple[Lease, NewJob], asyncpg.Record] = Batcher(
            self._continue_many, key=lambda item: item[0].job_id
        )
        self._completions: Batcher[tuple[Lease, str], asyncpg.Record] = Batcher(
            self._complete_many, key=lambda item: item[0].job_id
        )
        self._hand_offs = Batcher(self._hand_off_many, key=lambda item: item.lease.job_id)

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
        self._hand_offs.cancel_pending()
        if self._releasing:
            await asyncio.wait(set(self._releasing), timeout=CLOSE_TIMEOUT)
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
        # A connection on its way back is free in a moment: waiting for it ends.
        if self._holds_transaction() and _pool_is_short(self._pool) and not self._releasing:
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

    def _release_later(self, pool: _Pool, conn: PoolConnectionProxy[asyncpg.Record]) -> None:
        """Give a committed transaction's connection back without waiting: the pool
        resets it first (a round trip, as the transaction may have run anything on
        it), and the transaction's work is done, so its caller need not wait for
        that. The reset still ends before anyone else gets the connection, and
        :meth:`close` waits for it."""
        release = asyncio.create_task(self._release(pool, conn), name="queuert-pg-release")
        self._releasing.add(release)
        release.add_done_callback(self._releasing.discard)

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
        committed = False
        try:
            async with self._block(conn):
                if leased is not None:
                    lease, lock = leased
                    await (self.lock_job if lock else self.verify_lease)(tx=conn, lease=lease)
                yield conn
            committed = True
        finally:
            if signals is not None:
                self._after_commit.close(conn)
            if task is not None:
                left = self._holders.pop(task) - 1
                if left:
                    self._holders[task] = left
            if committed:
                self._release_later(pool, conn)
            else:
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


def _pool_is_short(pool: asyncpg.Pool[asyncpg.Record]) -> bool:
    """Whether an acquire from ``pool`` would wait: no idle connection, no room."""
    return pool.get_idle_size() == 0 and pool.get_size() >= pool.get_max_size()


async def from_url(url: str) -> PostgresStateAdapter:
    """Entry point of the ``postgresql`` and ``postgres`` schemes of ``queuert.state``:
    see :meth:`PostgresStateAdapter.from_url`."""
    return await PostgresStateAdapter.from_url(url)
