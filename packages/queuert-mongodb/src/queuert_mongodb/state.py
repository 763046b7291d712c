"""The MongoDB state adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import uuid4

import pymongo
from bson.codec_options import CodecOptions
from pymongo import AsyncMongoClient, ReadPreference, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from queuert.adapter_support import keyset_page
from queuert.errors import AdapterError, LeaseLostError
from queuert.ports.state import StateAdapter, StateCapabilities
from queuert.records import (
    ChainFilter,
    ChainRecord,
    JobError,
    JobFilter,
    JobRecord,
    Lease,
    NewJob,
    Page,
)
from queuert_mongodb import queries, updates
from queuert_mongodb.claims import claim_batch
from queuert_mongodb.documents import (
    Document,
    chain_from_documents,
    chains_from_documents,
    job_from_document,
    utc,
)
from queuert_mongodb.errors import DRIVER_ERRORS, translate
from queuert_mongodb.names import (
    DEFAULT_DATABASE,
    DEFAULT_PREFIX,
    Collections,
    validate_database,
)
from queuert_mongodb.schema import Schema
from queuert_mongodb.sessions import (
    Sessions,
    check_deployment,
    open_client,
    operation_timeout,
    validate_client,
    validate_timeout,
)

T = TypeVar("T")

MongoTx = AsyncClientSession
"""The transaction type: a PyMongo session with a transaction in progress."""

CODEC_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True, tzinfo=UTC)


class MongoStateAdapter(StateAdapter[AsyncClientSession]):
    """Jobs and chains in one collection of a MongoDB replica set (4.4 or newer), on
    PyMongo's asynchronous API.

    **Transactions.** ``tx`` is a :class:`~pymongo.asynchronous.client_session.AsyncClientSession`
    of :attr:`client` with a transaction in progress::

        async with adapter.client.start_session() as session:
            async with await session.start_transaction():
                await orders.insert_one({...}, session=session)
                await app.enqueue_job_chain(session, chain, input)

    The chain exists exactly when that transaction commits. :meth:`transaction`
    opens one of the adapter's own (snapshot reads, majority writes). Operations
    given ``tx=None`` that write one document run as single atomic writes; those that
    write several (a batch of jobs, a continuation, a deletion) run in a transaction of
    their own, retried while the server reports a transient transaction error.
    MongoDB aborts a transaction when a statement in it fails (a duplicate key, a write
    conflict): the caller's ``tx`` is then unusable and its commit fails. A lease that
    does not hold raises :class:`~queuert.errors.LeaseLostError` before anything is
    written, and leaves ``tx`` usable.

    **Concurrency.** Acquisition and reaping take no locks: they pick candidate ids,
    claim them with a conditional ``update_many`` carrying a token of their own, and
    read back what they won. :meth:`lock_job` writes to the job inside ``tx``, which
    holds the document's write lock until ``tx`` ends: writes outside a transaction
    (another worker's completion, a reaper) wait for it, and a write from another
    transaction fails with a write conflict, raised as
    :class:`~queuert.errors.TransientStateError` for core to retry. There are no
    savepoints.

    **Clock.** Every time is the server's (``$$NOW``), stored as BSON dates (millisecond
    precision) and returned timezone-aware in UTC.

    **Schema.** :meth:`migrate` creates the collections and indexes and records the
    schema version in ``{prefix}meta``; the first operation of an adapter checks that
    version once and raises :class:`~queuert.errors.SchemaNotMigratedError` when it is
    missing or older.

    **Timeouts.** Each operation runs under ``pymongo.timeout(operation_timeout_s)``
    (capped by any timeout the caller set around it); ``operation_timeout_s`` defaults to
    the client's ``timeoutMS``, else 10 seconds.
    """

    capabilities = StateCapabilities(
        row_locks=True,
        concurrent_transactions=True,
        savepoints=False,
        clock_precision_ms=1.0,
        native_notify=False,
        multi_process=True,
    )

    def __init__(
        self,
        client: AsyncMongoClient[Any],
        *,
        database: str = DEFAULT_DATABASE,
        collection_prefix: str = DEFAULT_PREFIX,
        operation_timeout_s: float | None = None,
    ) -> None:
        """Use ``client`` (which :meth:`close` leaves open); opens nothing. Raises
        :class:`~queuert.errors.ConfigurationError` for an invalid database name,
        prefix or timeout. :meth:`migrate` (or :meth:`check_deployment`) verifies that
        the server is a replica set."""
        self._client = validate_client(client)
        self.operation_timeout_s = operation_timeout(self._client, operation_timeout_s)
        self.database = validate_database(database)
        self.collections = Collections.for_prefix(collection_prefix)
        self.collection_prefix = collection_prefix
        db = client.get_database(database, codec_options=CODEC_OPTIONS)
        # Reading back what a write just did must not go to a lagging secondary.
        self._jobs: AsyncCollection[dict[str, Any]] = db.get_collection(
            self.collections.jobs, read_preference=ReadPreference.PRIMARY
        )
        self._sessions = Sessions(client, self.operation_timeout_s)
        self._schema = Schema(db, self.collections, self.operation_timeout_s)
        self._owns_client = False
        self._closed = False
        self._schema_checked = False

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        database: str | None = None,
        collection_prefix: str | None = None,
        operation_timeout_s: float | None = None,
        **client_options: Any,
    ) -> MongoStateAdapter:
        """Create an adapter with a client of its own (closed by :meth:`close`) and
        check the deployment.

        ``url`` is a ``mongodb://`` or ``mongodb+srv://`` URL; its path names the
        database (default ``queuert``) and its query may hold ``collection_prefix``
        (default ``queuert_``); the keyword arguments win over both.
        ``client_options`` go to :class:`pymongo.AsyncMongoClient`.

        Raises :class:`~queuert.errors.ConfigurationError` for an invalid URL or
        options, and for a server that is standalone (naming the fix: a replica set) or
        older than 4.4; :class:`~queuert.errors.TransientStateError` when the server
        cannot be reached within ``operation_timeout_s``.
        """
        if operation_timeout_s is not None:
            validate_timeout(operation_timeout_s)
        client, parsed = open_client(url, client_options)
        try:
            adapter = cls(
                client,
                database=parsed.database if database is None else database,
                collection_prefix=(
                    parsed.collection_prefix if collection_prefix is None else collection_prefix
                ),
                operation_timeout_s=operation_timeout_s,
            )
            adapter._owns_client = True
            await adapter.check_deployment()
        except BaseException:
            await client.close()
            raise
        return adapter

    @classmethod
    async def from_url(cls, url: str) -> MongoStateAdapter:
        """The adapter for a ``mongodb://`` or ``mongodb+srv://`` URL; see
        :meth:`connect`."""
        return await cls.connect(url)

    def __repr__(self) -> str:
        return (
            f"MongoStateAdapter(database={self.database!r}, "
            f"collection_prefix={self.collection_prefix!r})"
        )

    @property
    def client(self) -> AsyncMongoClient[Any]:
        """The client; sessions passed as ``tx`` must come from it."""
        return self._client

    async def close(self) -> None:
        """Close the client if the adapter created it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self._client.close()

    async def check_deployment(self) -> None:
        """Raise :class:`~queuert.errors.ConfigurationError`, naming the fix, unless the
        server is a replica set member or a mongos (multi-document transactions) of
        MongoDB 4.4 or newer."""
        await check_deployment(self._client, self.operation_timeout_s, "run queuert")

    # -- running operations -------------------------------------------------------

    async def _run(
        self,
        tx: AsyncClientSession | None,
        work: Callable[[AsyncClientSession | None], Awaitable[T]],
    ) -> T:
        """Run ``work`` in ``tx``, or without a transaction for ``tx=None``."""
        session = None if tx is None else self._sessions.validate(tx)
        if not self._schema_checked:
            await self.check_schema()
        try:
            with pymongo.timeout(self.operation_timeout_s):
                return await work(session)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def _write(
        self, tx: AsyncClientSession | None, work: Callable[[AsyncClientSession], Awaitable[T]]
    ) -> T:
        """Run ``work`` in ``tx``, or for ``tx=None`` in a transaction of the adapter's
        own that commits before this returns."""
        if tx is not None:
            session = self._sessions.validate(tx)
            return await self._run(session, lambda _: work(session))
        if not self._schema_checked:
            await self.check_schema()
        return await self._sessions.in_own_transaction(work)

    # -- transactions --------------------------------------------------------------

    def transaction(self) -> AbstractAsyncContextManager[AsyncClientSession]:
        """Start a session of :attr:`client` with a transaction (snapshot reads,
        majority writes) and yield it; commit when the block exits normally, abort when
        it raises. Driver errors, the commit's included, are raised as queuert errors
        (a write conflict or lost connection as
        :class:`~queuert.errors.TransientStateError`)."""
        return self._sessions.transaction()

    def leased_transaction(
        self, *, lease: Lease, lock: bool
    ) -> AbstractAsyncContextManager[AsyncClientSession]:
        """As the port says; with ``lock`` the job is written to in the transaction
        (see :meth:`lock_job`)."""
        return self._leased_transaction(lease, lock)

    @asynccontextmanager
    async def _leased_transaction(
        self, lease: Lease, lock: bool
    ) -> AsyncIterator[AsyncClientSession]:
        async with self._sessions.transaction() as session:
            if lock:
                await self.lock_job(tx=session, lease=lease)
            else:
                await self.verify_lease(tx=session, lease=lease)
            yield session

    def savepoint(self, *, tx: AsyncClientSession) -> AbstractAsyncContextManager[Any]:
        """MongoDB transactions have no savepoints: raises
        :class:`~queuert.errors.AdapterError` (``capabilities.savepoints`` is false)."""
        raise AdapterError("MongoDB transactions have no savepoints (capabilities.savepoints)")

    # -- schema ----------------------------------------------------------------------

    async def migrate(self) -> None:
        """Check the deployment, create the collections and the indexes of every schema
        version the database lacks, and record the version in ``{prefix}meta``.
        Idempotent; safe when several processes run it at once. Raises
        :class:`~queuert.errors.SchemaNotMigratedError` when the database holds a newer
        schema than this adapter knows."""
        await self.check_deployment()
        await self._schema.migrate()
        self._schema_checked = True

    async def check_schema(self) -> None:
        """Raise :class:`~queuert.errors.SchemaNotMigratedError`, naming the call to
        :meth:`migrate`, unless the database is at this adapter's schema version."""
        await self._schema.check()
        self._schema_checked = True

    # -- writing jobs ----------------------------------------------------------------

    async def create_jobs(
        self, *, tx: AsyncClientSession | None, jobs: Sequence[NewJob]
    ) -> Sequence[JobRecord]:
        if not jobs:
            return []
        if len(jobs) == 1:
            # One document: one atomic write, no transaction of the adapter's own needed.
            (job,) = jobs
            document = await self._run(tx, lambda session: self._insert(session, job))
            return [job_from_document(document)]

        async def work(session: AsyncClientSession) -> list[JobRecord]:
            await self._jobs.bulk_write(
                [
                    UpdateOne(
                        updates.insert_filter(job.id), updates.insert_pipeline(job), upsert=True
                    )
                    for job in jobs
                ],
                ordered=True,
                session=session,
            )
            found = await self._jobs.find(
                queries.ids_query([job.id for job in jobs]), session=session
            ).to_list(None)
            by_id = {document["_id"]: document for document in found}
            return [job_from_document(by_id[job.id]) for job in jobs]

        return await self._write(tx, work)

    async def _insert(self, session: AsyncClientSession | None, job: NewJob) -> Document:
        document = await self._jobs.find_one_and_update(
            updates.insert_filter(job.id),
            updates.insert_pipeline(job),
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        assert document is not None  # an upsert returns what it inserted
        return document

    async def acquire_jobs(
        self,
        *,
        tx: AsyncClientSession | None,
        queues: Sequence[str],
        limit: int,
        owner: str,
        lease_ms: int,
    ) -> list[JobRecord]:
        names = list(dict.fromkeys(queues))
        if limit <= 0 or not names:
            return []
        token = uuid4().hex
        update = updates.acquire_update(owner=owner, lease_ms=lease_ms, token=token)

        async def work(session: AsyncClientSession | None) -> list[JobRecord]:
            won = await claim_batch(
                self._jobs,
                session,
                queries.eligible_query(names),
                queries.ACQUIRE_SORT,
                limit,
                token,
                queries.still_eligible_query,
                update,
            )
            won.sort(key=lambda job: (job.scheduled_at, -job.priority, job.id))
            return won

        return await self._run(tx, work)

    async def renew_lease(
        self, *, tx: AsyncClientSession | None, lease: Lease, lease_ms: int
    ) -> datetime:
        async def work(session: AsyncClientSession | None) -> datetime:
            document = await self._jobs.find_one_and_update(
                queries.lease_guard(lease),
                updates.renew_update(lease_ms),
                projection={"leased_until": 1},
                return_document=ReturnDocument.AFTER,
                session=session,
            )
            if document is None:
                raise LeaseLostError(lease.job_id)
            leased_until = utc(document["leased_until"])
            assert leased_until is not None
            return leased_until

        return await self._run(tx, work)

    async def lock_job(self, *, tx: AsyncClientSession, lease: Lease) -> JobRecord:
        """Verify the lease and write to the job inside ``tx``: the document stays
        write-locked until ``tx`` ends (see the class documentation)."""
        return await self._guarded(tx, lease, updates.LOCK_UPDATE)

    async def verify_lease(self, *, tx: AsyncClientSession, lease: Lease) -> JobRecord:
        async def work(session: AsyncClientSession | None) -> JobRecord:
            document = await self._jobs.find_one(queries.lease_guard(lease), session=session)
            if document is None:
                raise LeaseLostError(lease.job_id)
            return job_from_document(document)

        return await self._run(tx, work)

    async def _guarded(self, tx: AsyncClientSession | None, lease: Lease, update: Any) -> JobRecord:
        async def work(session: AsyncClientSession | None) -> JobRecord:
            document = await self._jobs.find_one_and_update(
                queries.lease_guard(lease),
                update,
                return_document=ReturnDocument.AFTER,
                session=session,
            )
            if document is None:
                raise LeaseLostError(lease.job_id)
            return job_from_document(document)

        return await self._run(tx, work)

    async def complete_job(
        self, *, tx: AsyncClientSession | None, lease: Lease, output: str
    ) -> JobRecord:
        return await self._guarded(tx, lease, updates.complete_update(output))

    async def continue_job(
        self, *, tx: AsyncClientSession | None, lease: Lease, next_job: NewJob
    ) -> JobRecord:
        async def work(session: AsyncClientSession) -> JobRecord:
            # The lease first: when it is gone nothing was written and tx stays usable.
            result = await self._jobs.update_one(
                queries.lease_guard(lease),
                updates.continued_update(next_job.id),
                session=session,
            )
            if result.matched_count == 0:
                raise LeaseLostError(lease.job_id)
            return job_from_document(await self._insert(session, next_job))

        return await self._write(tx, work)

    async def reschedule_job(
        self,
        *,
        tx: AsyncClientSession | None,
        lease: Lease,
        error: JobError | None,
        delay_ms: int = 0,
        scheduled_at: datetime | None = None,
        refund_attempt: bool = False,
    ) -> JobRecord:
        update = updates.reschedule_update(
            error=error, delay_ms=delay_ms, scheduled_at=scheduled_at, refund_attempt=refund_attempt
        )
        return await self._guarded(tx, lease, update)

    async def fail_job(
        self, *, tx: AsyncClientSession | None, lease: Lease, error: JobError
    ) -> JobRecord:
        return await self._guarded(tx, lease, updates.fail_update(error))

    async def reap_expired_leases(
        self, *, tx: AsyncClientSession | None, limit: int
    ) -> list[JobRecord]:
        if limit <= 0:
            return []
        token = uuid4().hex

        async def work(session: AsyncClientSession | None) -> list[JobRecord]:
            reaped = await claim_batch(
                self._jobs,
                session,
                queries.expired_query(),
                queries.REAP_SORT,
                limit,
                token,
                queries.still_expired_query,
                updates.reap_update(token),
            )
            return sorted(reaped, key=lambda job: job.id)

        return await self._run(tx, work)

    async def cancel_chain(
        self, *, tx: AsyncClientSession | None, chain_id: str
    ) -> ChainRecord | None:
        async def work(session: AsyncClientSession | None) -> ChainRecord | None:
            await self._jobs.update_many(
                queries.cancellable_query(chain_id), updates.cancel_update(), session=session
            )
            return await self._chain(session, chain_id)

        return await self._run(tx, work)

    async def time_until_next_job(
        self, *, tx: AsyncClientSession | None, queues: Sequence[str]
    ) -> float | None:
        if not queues:
            return None

        async def work(session: AsyncClientSession | None) -> float | None:
            cursor = await self._jobs.aggregate(
                queries.next_due_pipeline(list(dict.fromkeys(queues))), session=session
            )
            found = await cursor.to_list(None)
            if not found:
                return None
            return max(0.0, float(found[0]["wait_ms"]) / 1000)

        return await self._run(tx, work)

    # -- reading -----------------------------------------------------------------------

    async def get_job(self, *, tx: AsyncClientSession | None, job_id: str) -> JobRecord | None:
        async def work(session: AsyncClientSession | None) -> JobRecord | None:
            document = await self._jobs.find_one({"_id": job_id}, session=session)
            return None if document is None else job_from_document(document)

        return await self._run(tx, work)

    async def list_jobs(
        self, *, tx: AsyncClientSession | None, filter: JobFilter, after: str | None, limit: int
    ) -> Page[JobRecord]:
        if limit <= 0:
            return Page(items=[], next_cursor=None)

        async def work(session: AsyncClientSession | None) -> Page[JobRecord]:
            found = await self._jobs.find(
                queries.job_list_query(filter, after),
                sort=queries.ID_SORT,
                limit=limit,
                session=session,
            ).to_list(None)
            return keyset_page([job_from_document(document) for document in found], limit)

        return await self._run(tx, work)

    async def get_chain(
        self, *, tx: AsyncClientSession | None, chain_id: str
    ) -> ChainRecord | None:
        return await self._run(tx, lambda session: self._chain(session, chain_id))

    async def _chain(self, session: AsyncClientSession | None, chain_id: str) -> ChainRecord | None:
        found = await self._jobs.find(queries.chain_query(chain_id), session=session).to_list(None)
        return chains_from_documents(found)

    async def list_chains(
        self,
        *,
        tx: AsyncClientSession | None,
        filter: ChainFilter,
        after: str | None,
        limit: int,
    ) -> Page[ChainRecord]:
        if limit <= 0:
            return Page(items=[], next_cursor=None)

        async def work(session: AsyncClientSession | None) -> Page[ChainRecord]:
            heads = await self._jobs.find(
                queries.chain_head_query(filter, after),
                sort=queries.CHAIN_SORT,
                limit=limit,
                session=session,
            ).to_list(None)
            if not heads:
                return Page(items=[], next_cursor=None)
            firsts = await self._jobs.find(
                queries.first_jobs_query([head["chain_id"] for head in heads]), session=session
            ).to_list(None)
            by_id = {document["_id"]: document for document in firsts}
            items = [
                chain_from_documents(by_id[head["chain_id"]], head)
                for head in heads
                if head["chain_id"] in by_id
            ]
            # The cursor follows the heads read, so a chain whose first job is missing
            # cannot end the listing early.
            full = len(heads) == limit
            return Page(items=items, next_cursor=heads[-1]["chain_id"] if full else None)

        return await self._run(tx, work)

    async def delete_chains(
        self, *, tx: AsyncClientSession | None, chain_ids: Sequence[str]
    ) -> int:
        unique_ids = list(dict.fromkeys(chain_ids))
        if not unique_ids:
            return 0

        async def work(session: AsyncClientSession) -> int:
            existing = await self._jobs.count_documents(
                queries.first_jobs_query(unique_ids), session=session
            )
            await self._jobs.delete_many(queries.chains_query(unique_ids), session=session)
            return existing

        return await self._write(tx, work)


async def from_url(url: str) -> MongoStateAdapter:
    """Entry point of the ``mongodb`` and ``mongodb+srv`` state schemes: see
    :meth:`MongoStateAdapter.connect`."""
    return await MongoStateAdapter.connect(url)
