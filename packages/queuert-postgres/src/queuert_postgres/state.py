"""The PostgreSQL state adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from datetime import datetime, timedelta
from typing import Any, NoReturn
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
)
from queuert.urls import redact_message
from queuert_postgres import control_ops as postgres_control
from queuert_postgres import migrations, tx_checks
from queuert_postgres.blockers import BlockerStatements
from queuert_postgres.caller_tx import caller_connection
from queuert_postgres.connections import LendingConnection, PostgresTx
from queuert_postgres.control import ControlStatements
from queuert_postgres.dedup import DedupStatements
from queuert_postgres.driver_errors import DRIVER_ERRORS, MIGRATE_HINT, translate
from queuert_postgres.names import Names
from queuert_postgres.notify import PostgresNotifyAdapter
from queuert_postgres.rows import chain_record, job_record
from queuert_postgres.statements import SignalChannels, Statements, inline
from queuert_postgres.urls import int_option, redact, split_url

DEFAULT_SCHEMA = "queuert"
URL_OPTIONS = ("schema", "table_prefix", "min_size", "max_size")
_LEASE_EXPIRED_JSON = LEASE_EXPIRED_ERROR.to_json()


_KEPT = 2
# How often the lock of blocker chains is retried when they keep continuing meanwhile.
_BLOCKER_LOCK_ROUNDS = 20
"""Idle connections the adapter keeps for its own single statements."""


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
    )

    def __init__(
        self,
        pool: asyncpg.Pool[asyncpg.Record],
        *,
        schema: str = DEFAULT_SCHEMA,
        table_prefix: str = "",
    ) -> None:
        """Use an existing pool; :meth:`close` leaves it open."""
        self._names = Names.create(schema, table_prefix)
        self._sql = Statements(self._names)
        self._ctl: ControlStatements | None = None
        self._blocker_sql = BlockerStatements(self._names)
        self._dedup_sql = DedupStatements(self._names, self._sql.chain_cols, self._sql.chain_from)
        self._pool = pool
        self._dsn: str | None = None
        self._owns_pool = False
        self._kept: list[PoolConnectionProxy[asyncpg.Record]] = []
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
        max_size: int = 10,
        **pool_options: Any,
    ) -> PostgresStateAdapter:
        """Create an adapter with a pool of its own (closed by :meth:`close`).

        ``pool_options`` go to :func:`asyncpg.create_pool`. Connections are
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
        connection_class = pool_options.setdefault("connection_class", LendingConnection)
        if (
            "reset" not in pool_options
            and isinstance(connection_class, type)
            and issubclass(connection_class, LendingConnection)
        ):

            async def reset(conn: asyncpg.Connection[asyncpg.Record]) -> None:
                assert isinstance(conn, LendingConnection)
                await conn.reset_if_lent()

            pool_options["reset"] = reset
        try:
            pool = await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, **pool_options
            )
        except (ValueError, TypeError) as exc:
            # The driver's message may quote the DSN: redact it, and do not chain it.
            raise ConfigurationError(
                f"invalid PostgreSQL connection options for {redact(dsn)!r}: "
                f"{redact_message(str(exc), dsn)}"
            ) from None
        except DRIVER_ERRORS as exc:
            raise translate(exc, schema=schema) from exc
        adapter = cls(pool, schema=schema, table_prefix=table_prefix)
        adapter._dsn = dsn
        adapter._owns_pool = True
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
            max_size=int_option(url, options, "max_size", 10, 1),
        )

    @property
    def pool(self) -> asyncpg.Pool[asyncpg.Record]:
        """The pool. In one the adapter created, the adapter keeps up to two idle
        connections for its own single statements while the pool has others idle
        or room to open them, and hands them back when it has neither."""
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
        if self._owns_pool:
            await self._give_back_kept()
            await self._pool.close()

    def bind_notify(self, notify: NotifyAdapter) -> bool:
        """Accept a :class:`~queuert_postgres.PostgresNotifyAdapter` that connects with
        this adapter's DSN or publishes through its pool (so NOTIFYs sent here reach
        its listeners); decline any other notifier, and a second one with other
        channels."""
        if not isinstance(notify, PostgresNotifyAdapter):
            return False
        same_database = (self._dsn is not None and notify.dsn == self._dsn) or (
            notify.publish_pool is self._pool
        )
        if not same_database:
            return False
        scheduled, completed, _ = notify.channels
        signals = SignalChannels(scheduled=scheduled, chain_completed=completed)
        if self._sql.signals is not None:
            return self._sql.signals == signals
        self._sql = Statements(self._names, signals)
        return True

    # -- plumbing ---------------------------------------------------------------

    def _raise(self, exc: BaseException) -> NoReturn:
        raise translate(exc, schema=self._names.schema) from exc

    async def _fetch(self, tx: PostgresTx | None, sql: str, *args: Any) -> list[asyncpg.Record]:
        try:
            if tx is None:
                async with self._own_connection() as conn:
                    return await conn.fetch(sql, *args)
            return await tx.fetch(sql, *args)
        except DRIVER_ERRORS as exc:
            self._raise(exc)

    async def _fetchrow(self, tx: PostgresTx | None, sql: str, *args: Any) -> asyncpg.Record | None:
        try:
            if tx is None:
                async with self._own_connection() as conn:
                    return await conn.fetchrow(sql, *args)
            return await tx.fetchrow(sql, *args)
        except DRIVER_ERRORS as exc:
            self._raise(exc)

    @asynccontextmanager
    async def _own_connection(self) -> AsyncIterator[PostgresTx]:
        """A connection for one statement of the adapter's own (its own transaction).

        The adapter keeps up to two idle connections of its own pool for
        these (a worker's acquisitions and its batched completions run side by side):
        a pool's acquire and release cost about as much as a short statement. One is
        kept only while the pool has another idle connection or room to open one, and
        the adapter's transactions take kept ones before waiting for the pool, so that
        nothing waits for them; a pool of the application's is used as it is."""
        if not self._owns_pool or self._closed or self._pool.get_max_size() < 2:
            async with self._pool.acquire() as conn:
                yield conn
            return
        kept = self._kept
        conn = kept.pop() if kept else await self._pool.acquire()
        try:
            yield conn
        except BaseException:
            # A failed or cancelled statement may leave the connection in any state:
            # the pool checks it (and resets or replaces it) on release.
            await self._pool.release(conn)
            raise
        if self._closed or len(kept) >= _KEPT or self._pool_is_short():
            await self._pool.release(conn)
        else:
            kept.append(conn)

    def _pool_is_short(self) -> bool:
        """Whether an acquire from the pool would wait: no idle connection, no room."""
        pool = self._pool
        return pool.get_idle_size() == 0 and pool.get_size() >= pool.get_max_size()

    async def _give_back_kept(self) -> None:
        kept, self._kept = self._kept, []
        for conn in kept:
            await self._pool.release(conn)

    # -- transactions -----------------------------------------------------------

    def transaction(self) -> AbstractAsyncContextManager[PostgresTx]:
        return self._transaction(None)

    def leased_transaction(
        self, *, lease: Lease, lock: bool
    ) -> AbstractAsyncContextManager[PostgresTx]:
        """As the port says; on this adapter's own pool the lease check is sent in
        the message of the ``BEGIN``, costing no round trip of its own."""
        return self._transaction((lease, lock))

    @asynccontextmanager
    async def _transaction(self, leased: tuple[Lease, bool] | None) -> AsyncIterator[PostgresTx]:
        conn: PostgresTx
        if self._kept:
            # Never wait for the pool while a connection sits idle here.
            conn = self._kept.pop()
        else:
            try:
                conn = await self._pool.acquire()
            except DRIVER_ERRORS as exc:
                self._raise(exc)
        # Through the pool's proxy: the LendingConnection itself, if it is one.
        lending: LendingConnection | None = getattr(conn, "lending", None)
        if lending is not None:
            lending.lend()
            if leased is not None:
                lease, lock = leased
                lending.begin_with(
                    self._sql.lease_check(lease.job_id, lease.owner, lease.attempt, lock=lock)
                )
        try:
            async with self._block(conn):
                if leased is not None:
                    await self._check_lease(conn, lending, *leased)
                yield conn
        finally:
            await self._pool.release(conn)

    async def _check_lease(
        self, conn: PostgresTx, lending: LendingConnection | None, lease: Lease, lock: bool
    ) -> None:
        status = None if lending is None else lending.begin_status
        if status is None:  # a pool of the application's: a statement of its own
            await (self.lock_job if lock else self.verify_lease)(tx=conn, lease=lease)
        elif status != "SELECT 1":
            raise LeaseLostError(lease.job_id)
        elif lock and lending is not None:
            lending.locked_lease = lease

    def _send_with_commit(self, tx: PostgresTx, lease: Lease, sql: str, *args: Any) -> bool:
        """Attach ``sql`` with ``args`` to the ``COMMIT`` of ``tx`` when ``tx`` is a
        leased transaction of this adapter that locked ``lease``'s job and the values
        have literals; return whether it was attached."""
        lending: LendingConnection | None = getattr(tx, "lending", None)
        if lending is None or lending.locked_lease != lease:
            return False
        statement = inline(sql, *args)
        if statement is None:
            return False
        lending.commit_with(statement)
        return True

    def savepoint(self, *, tx: PostgresTx) -> AbstractAsyncContextManager[PostgresTx]:
        return self._block(tx)

    @asynccontextmanager
    async def _block(self, conn: PostgresTx) -> AsyncIterator[PostgresTx]:
        # A transaction, or a savepoint when conn is already in one. Driver errors of
        # BEGIN/COMMIT are translated; errors raised by the block pass unchanged.
        transaction = conn.transaction()
        try:
            await transaction.start()
        except DRIVER_ERRORS as exc:
            self._raise(exc)
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
            self._raise(exc)

    # -- schema -------------------------------------------------------------------

    async def migrate(self) -> None:
        """Create the schema and tables or apply the missing steps, in one transaction
        under an advisory lock; concurrent callers wait and then find nothing to do."""
        try:
            async with self._pool.acquire() as conn:
                await migrations.migrate(conn, self._names)
        except DRIVER_ERRORS as exc:
            self._raise(exc)

    async def check_schema(self) -> None:
        names = self._names
        where = f'PostgreSQL schema "{names.schema}"' + (
            f' (table prefix "{names.table_prefix}")' if names.table_prefix else ""
        )
        try:
            async with self._pool.acquire() as conn:
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
        if len(jobs) == 1:
            row = await self._fetchrow(tx, self._sql.create_job, *_new_job_args(jobs[0]))
        elif _alike_chain_starts(jobs):
            row = await self._fetchrow(
                tx,
                self._sql.create_chain_starts,
                [j.id for j in jobs],
                [j.input for j in jobs],
                *_shared_fields(jobs[0]),
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
            row = await self._completions.submit((lease, output))
        else:
            row = await self._fetchrow(
                tx, self._sql.complete_job, lease.job_id, lease.owner, lease.attempt, output
            )
        if row is None:
            raise LeaseLostError(lease.job_id)
        return job_record(row)

    async def complete_locked_job(self, *, tx: PostgresTx, lease: Lease, output: str) -> None:
        """As the port says; in a leased transaction of this adapter's own pool the
        completion is sent in the message of the ``COMMIT``."""
        args = (lease.job_id, lease.owner, lease.attempt, output)
        if not self._send_with_commit(tx, lease, self._sql.complete_job, *args):
            await self.complete_job(tx=tx, lease=lease, output=output)

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
        if tx is None:
            # Continuations running at the same time share one statement (see batching).
            row = await self._continuations.submit((lease, next_job))
        else:
            row = await self._continue_one(tx, lease, next_job)
        if row is None:
            raise LeaseLostError(lease.job_id)
        return job_record(row)

    async def continue_locked_job(self, *, tx: PostgresTx, lease: Lease, next_job: NewJob) -> None:
        """As the port says; in a leased transaction of this adapter's own pool the
        continuation is sent in the message of the ``COMMIT``."""
        args = _continue_args(lease, next_job)
        if not self._send_with_commit(tx, lease, self._sql.continue_job, *args):
            await self.continue_job(tx=tx, lease=lease, next_job=next_job)

    async def _continue_one(
        self, tx: PostgresTx | None, lease: Lease, next_job: NewJob
    ) -> asyncpg.Record | None:
        try:
            return await self._fetchrow(
                tx,
                self._sql.continue_job,
                lease.job_id,
                lease.owner,
                lease.attempt,
                *_new_job_args(next_job),
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
                columns = zip(*(_continue_args(*item) for item in items), strict=True)
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
        sql = self._sql.list_chains(
            after=after is not None,
            statuses=filter.statuses is not None,
            chain_names=filter.chain_names is not None,
            created_after=filter.created_after is not None,
            created_before=filter.created_before is not None,
            newest=filter.newest_first,
        )
        rows = await self._fetch(tx, sql, *args, limit)
        items = [chain_record(row) for row in rows]
        return keyset_page(items, limit)

    async def delete_chains(self, *, tx: PostgresTx | None, chain_ids: Sequence[str]) -> int:
        if not chain_ids:
            return 0
        row = await self._fetchrow(tx, self._sql.delete_chains, list(chain_ids))
        return 0 if row is None else int(row[0])

    async def caller_transaction(self, tx: object) -> PostgresTx:
        """An asyncpg connection as it is; an SQLAlchemy ``AsyncSession`` or
        ``AsyncConnection`` (``postgresql+asyncpg``) of this database as its asyncpg
        connection, in its transaction (see :mod:`queuert_postgres.caller_tx`)."""
        return await caller_connection(self, tx)

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
            self, self._control(), tx, job_id, output, next_job, _new_job_args
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
        # The two columns after the job's: counted from the end, they stay put when
        # a migration adds a job column.
        return QueuePosition(job=job_record(row), now=row[-2], ahead=int(row[-1]))

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
        self, *, tx: PostgresTx | None, jobs: Sequence[NewJob], dedup: Sequence[DedupKey]
    ) -> list[str]:
        sql = self._dedup_sql
        holders: list[str] = []
        async with self._atomic(tx) as conn:
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
                holders.append(job.chain_id)
        return holders

    async def _list_chains_by_key(
        self, tx: PostgresTx | None, filter: ChainFilter, after: str | None, limit: int
    ) -> Page[ChainRecord]:
        rows = await self._fetch(
            tx,
            self._dedup_sql.list_chains,
            filter.dedup_key,
            after,
            None if filter.statuses is None else [JobStatus(s).value for s in filter.statuses],
            None if filter.chain_names is None else list(filter.chain_names),
            limit,
        )
        return keyset_page([chain_record(row) for row in rows], limit)


def _new_job_args(job: NewJob) -> tuple[Any, ...]:
    return (
        job.id,
        job.chain_id,
        job.chain_name,
        job.queue,
        job.position,
        job.input,
        job.max_attempts,
        job.priority,
        job.scheduled_at,
        job.delay_ms,
        job.trace_context,
    )


def _shared_fields(job: NewJob) -> tuple[Any, ...]:
    """What the jobs of one ``enqueue_job_chains`` call share, in the order of the
    scalar parameters of ``Statements.create_chain_starts``."""
    return (
        job.chain_name,
        job.queue,
        job.max_attempts,
        job.priority,
        job.scheduled_at,
        job.delay_ms,
    )


def _alike_chain_starts(jobs: Sequence[NewJob]) -> bool:
    """Whether ``jobs`` are all first jobs of their chains and differ only in id and
    input (as the jobs of one ``enqueue_job_chains`` call do) and carry no trace context."""
    shared = _shared_fields(jobs[0])
    return all(
        j.position == 0
        and j.chain_id == j.id
        and j.trace_context is None
        and _shared_fields(j) == shared
        for j in jobs
    )


def _continue_args(lease: Lease, job: NewJob) -> tuple[Any, ...]:
    return (lease.job_id, lease.owner, lease.attempt, *_new_job_args(job))


async def from_url(url: str) -> PostgresStateAdapter:
    """Entry point of the ``postgresql`` and ``postgres`` schemes of ``queuert.state``:
    see :meth:`PostgresStateAdapter.from_url`."""
    return await PostgresStateAdapter.from_url(url)
