"""What every operation of the MongoDB state adapter stands on: the client, the
collections, the schema check and the way operations run (in the caller's
transaction, a transaction of the adapter's own, or a single write)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC
from typing import Any, Self, TypeVar

import pymongo
from bson.codec_options import CodecOptions
from pymongo import AsyncMongoClient, ReadPreference, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from queuert.errors import AdapterError, LeaseLostError
from queuert.ports.state import StateAdapter
from queuert.records import ChainRecord, JobRecord, Lease, NewJob
from queuert_mongodb import queries, updates
from queuert_mongodb.blockers import ended_chain, inherited
from queuert_mongodb.documents import Document, chains_from_documents, job_from_document
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
from queuert_mongodb.unblock import end_chains

T = TypeVar("T")

Collection = AsyncCollection[dict[str, Any]]

CODEC_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True, tzinfo=UTC)


class MongoBase(StateAdapter[AsyncClientSession]):
    """The shared part of :class:`~queuert_mongodb.MongoStateAdapter` (see there)."""

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
        self._db = db
        self._jobs = self._collection(self.collections.jobs)
        self._blockers = self._collection(self.collections.blockers)
        self._dedup = self._collection(self.collections.dedup)
        self._workers = self._collection(self.collections.workers)
        self._slots = self._collection(self.collections.slots)
        self._limits = self._collection(self.collections.limits)
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
    ) -> Self:
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
    async def from_url(cls, url: str) -> Self:
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

    async def is_transaction_open(self, *, tx: AsyncClientSession) -> bool:
        """Whether ``tx`` is a session still inside its transaction. Sends nothing."""
        return self._sessions.is_open(tx)

    async def check_transaction(self, *, tx: object) -> AsyncClientSession:
        """``tx`` when it is a session of :attr:`client` inside a transaction; raises
        :class:`~queuert.errors.InvalidTransactionError` (or
        :class:`~queuert.errors.TransactionClosedError` when its transaction ended)
        otherwise. Sends nothing."""
        return self._sessions.validate(tx)

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

    # -- shared by the operations -------------------------------------------------

    def _collection(self, name: str) -> Collection:
        # Reading back what a write just did must not go to a lagging secondary.
        return self._db.get_collection(name, read_preference=ReadPreference.PRIMARY)

    async def _insert(
        self, session: AsyncClientSession | None, job: NewJob, extra: dict[str, Any] | None = None
    ) -> Document:
        """Insert ``job`` (with the ``extra`` fields of
        :func:`~queuert_mongodb.updates.insert_pipeline`) and return its document."""
        document = await self._jobs.find_one_and_update(
            updates.insert_filter(job.id),
            updates.insert_pipeline(job, extra),
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        assert document is not None  # an upsert returns what it inserted
        return document

    async def _insert_many(
        self,
        session: AsyncClientSession,
        jobs: Sequence[NewJob],
        extra: dict[str, Any] | None = None,
    ) -> list[JobRecord]:
        """Insert ``jobs`` (with ``extra`` fields) in ``session``'s transaction and
        return them in order: one write, one read."""
        if len(jobs) == 1:
            return [job_from_document(await self._insert(session, jobs[0], extra))]
        await self._jobs.bulk_write(
            [
                UpdateOne(
                    updates.insert_filter(job.id),
                    updates.insert_pipeline(job, extra),
                    upsert=True,
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

    async def _continue(
        self,
        session: AsyncClientSession,
        lease: Lease,
        next_job: NewJob,
        extra: dict[str, Any] | None = None,
    ) -> Document:
        """Mark the leased job continued and insert ``next_job`` (with ``extra``
        fields), which takes over the chain's ``dependents`` flag."""
        # The lease first: when it is gone nothing was written and tx stays usable.
        previous = await self._jobs.find_one_and_update(
            queries.lease_guard(lease),
            updates.continued_update(next_job.id),
            projection={"dependents": 1},
            session=session,
        )
        if previous is None:
            raise LeaseLostError(lease.job_id)
        return await self._insert(session, next_job, {**inherited(previous), **(extra or {})})

    async def _chain(self, session: AsyncClientSession | None, chain_id: str) -> ChainRecord | None:
        found = await self._jobs.find(queries.chain_query(chain_id), session=session).to_list(None)
        return chains_from_documents(found)

    async def _ended(self, session: AsyncClientSession, documents: Sequence[Document]) -> None:
        """Unblock or fail, in ``session``'s transaction, the jobs waiting on the chains
        that the written ``documents`` ended (see :mod:`queuert_mongodb.blockers`)."""
        ended = dict(filter(None, map(ended_chain, documents)))
        if ended:
            await end_chains(self._jobs, self._blockers, session, ended)
