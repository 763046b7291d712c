"""The MongoDB state adapter."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import uuid4

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession

from queuert.adapter_support import keyset_page
from queuert.errors import LeaseLostError
from queuert.ports.state import StateCapabilities
from queuert.records import (
    ChainFilter,
    ChainRecord,
    JobError,
    JobFilter,
    JobRecord,
    JobStatus,
    Lease,
    NewJob,
    Page,
)
from queuert_mongodb import queries, updates
from queuert_mongodb.blocker_ops import BlockerOps
from queuert_mongodb.blockers import edges_of_chains_query
from queuert_mongodb.claims import acquire_batch, claim_batch
from queuert_mongodb.control_ops import ControlOps
from queuert_mongodb.documents import (
    chain_from_documents,
    job_from_document,
    utc,
)
from queuert_mongodb.limit_ops import LimitOps
from queuert_mongodb.start_ops import StartOps

MongoTx = AsyncClientSession
"""The transaction type: a PyMongo session with a transaction in progress."""

__all__ = ["MongoStateAdapter", "MongoTx", "from_url"]


class MongoStateAdapter(ControlOps, StartOps, BlockerOps, LimitOps):
    """Jobs and chains in a MongoDB replica set (4.4 or newer), on PyMongo's
    asynchronous API: every operation of the state port, with the ``blockers``,
    ``deduplication``, ``concurrency_limits`` and ``schedules`` capabilities.

    **Transactions.** ``tx`` is a :class:`~pymongo.asynchronous.client_session.AsyncClientSession`
    of :attr:`client` with a transaction in progress::

        async with adapter.client.start_session() as session:
            async with await session.start_transaction():
                await orders.insert_one({...}, session=session)
                await app.enqueue_job_chain(session, chain, input)

    The chain exists exactly when that transaction commits. :meth:`transaction`
    opens one of the adapter's own (snapshot reads, majority writes). Operations
    given ``tx=None`` that write one document run as single atomic writes; those that
    write several (a batch of jobs, a continuation, a deletion, the end of a chain
    other jobs wait on, a blocked job, a deduplicated or scheduled start, a limited
    acquisition) run in a transaction of their own, run again while the server
    reports a transient transaction error. MongoDB aborts a transaction when a
    statement in it fails (a duplicate key, a write conflict): the caller's ``tx`` is
    then unusable and its commit fails. A lease that does not hold, a missing
    blocker chain, an unknown or ended job or chain raise before anything is
    written, and leave ``tx`` usable.

    **Concurrency.** MongoDB has no row locks between transactions, only write
    conflicts: of two transactions writing one document the second fails (raised
    as :class:`~queuert.errors.TransientStateError` for core to retry), and a write
    outside a transaction waits for the transaction holding the document.
    Acquisition takes no locks: it reads candidates, claims those unchanged since
    with a conditional ``update_many`` carrying a token of its own
    (:mod:`queuert_mongodb.claims`). :meth:`lock_job` writes to the job inside
    ``tx``, which holds the document until ``tx`` ends. Blocked jobs, deduplication
    keys, concurrency limits and schedule slots each rest on one document that
    every competing transaction writes (:mod:`queuert_mongodb.blockers`,
    :mod:`queuert_mongodb.dedup`, :mod:`queuert_mongodb.limits`,
    :mod:`queuert_mongodb.schedules`). There are no savepoints.

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
        blockers=True,
        deduplication=True,
        concurrency_limits=True,
        schedules=True,
    )

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
        return await self._write(tx, lambda session: self._insert_many(session, jobs))

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

        async def work(session: AsyncClientSession | None) -> list[JobRecord]:
            won = await acquire_batch(
                self._jobs,
                session,
                queries.eligible_query(names),
                queries.ACQUIRE_SORT,
                limit,
                owner=owner,
                lease_ms=lease_ms,
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

    async def _finish(self, tx: AsyncClientSession | None, lease: Lease, update: Any) -> JobRecord:
        """End the leased job (and its chain) with ``update``. Without ``tx`` one atomic
        write when no job waits on the chain; otherwise (and in ``tx``) in a
        transaction that also unblocks or fails the waiting jobs."""
        if tx is None:
            fast = {**queries.lease_guard(lease), "dependents": {"$ne": True}}
            document = await self._run(
                None,
                lambda session: self._jobs.find_one_and_update(
                    fast, update, return_document=ReturnDocument.AFTER, session=session
                ),
            )
            if document is not None:
                return job_from_document(document)

        async def work(session: AsyncClientSession) -> JobRecord:
            document = await self._jobs.find_one_and_update(
                queries.lease_guard(lease),
                update,
                return_document=ReturnDocument.AFTER,
                session=session,
            )
            if document is None:
                raise LeaseLostError(lease.job_id)
            await self._ended(session, [document])
            return job_from_document(document)

        return await self._write(tx, work)

    async def complete_job(
        self, *, tx: AsyncClientSession | None, lease: Lease, output: str
    ) -> JobRecord:
        return await self._finish(tx, lease, updates.complete_update(output))

    async def continue_job(
        self, *, tx: AsyncClientSession | None, lease: Lease, next_job: NewJob
    ) -> JobRecord:
        return job_from_document(
            await self._write(tx, lambda s: self._continue(s, lease, next_job))
        )

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
        return await self._finish(tx, lease, updates.fail_update(error))

    async def reap_expired_leases(
        self, *, tx: AsyncClientSession | None, limit: int
    ) -> list[JobRecord]:
        if limit <= 0:
            return []
        token = uuid4().hex

        async def work(session: AsyncClientSession) -> list[JobRecord]:
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
            if any(job.status is JobStatus.FAILED for job in reaped):
                failed = [job.id for job in reaped if job.status is JobStatus.FAILED]
                documents = await self._jobs.find(
                    queries.ids_query(failed), session=session
                ).to_list(None)
                await self._ended(session, documents)
            return sorted(reaped, key=lambda job: job.id)

        # A transaction: a job failing here may end a chain other jobs wait on.
        return await self._write(tx, work)

    async def cancel_chain(
        self, *, tx: AsyncClientSession | None, chain_id: str
    ) -> ChainRecord | None:
        async def work(session: AsyncClientSession) -> ChainRecord | None:
            document = await self._jobs.find_one_and_update(
                queries.cancellable_query(chain_id),
                updates.cancel_update(),
                return_document=ReturnDocument.AFTER,
                session=session,
            )
            if document is not None:
                await self._ended(session, [document])
            return await self._chain(session, chain_id)

        return await self._write(tx, work)

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
                sort=queries.id_sort(filter.newest_first),
                limit=limit,
                session=session,
            ).to_list(None)
            return keyset_page([job_from_document(document) for document in found], limit)

        return await self._run(tx, work)

    async def get_chain(
        self, *, tx: AsyncClientSession | None, chain_id: str
    ) -> ChainRecord | None:
        return await self._run(tx, lambda session: self._chain(session, chain_id))

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

        pipeline = queries.chain_list_pipeline(filter, after, limit, self.collections.jobs)

        async def work(session: AsyncClientSession | None) -> Page[ChainRecord]:
            cursor = await self._jobs.aggregate(pipeline, session=session)
            found = await cursor.to_list(None)
            chains = [chain_from_documents(doc["first"], doc) for doc in found]
            return keyset_page(chains, limit)

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
            await self._blockers.delete_many(edges_of_chains_query(unique_ids), session=session)
            return existing

        return await self._write(tx, work)


async def from_url(url: str) -> MongoStateAdapter:
    """Entry point of the ``mongodb`` and ``mongodb+srv`` state schemes: see
    :meth:`MongoStateAdapter.connect`."""
    return await MongoStateAdapter.connect(url)
