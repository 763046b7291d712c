"""The control operations of the MongoDB state adapter: revoke, resume, settle and
purge chains from outside a worker, worker records, counts and queue positions
(documents in :mod:`queuert_mongodb.control`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession

from queuert.control_records import (
    QueueCounts,
    QueuePosition,
    RevokedChain,
    SettledJob,
    WorkerInfo,
    WorkerRecord,
)
from queuert.errors import AdapterError, ChainEndedError, JobNotFoundError, JobStateError
from queuert.records import JobRecord, JobStatus, NewJob
from queuert_mongodb import control, queries
from queuert_mongodb.base import MongoBase
from queuert_mongodb.blockers import edges_of_chains_query, inherited
from queuert_mongodb.documents import job_from_document, utc


class ControlOps(MongoBase):
    """Control from outside a worker, and observation."""

    async def revoke_chain(self, *, tx: AsyncClientSession | None, chain_id: str) -> RevokedChain:
        """As the port says: one write to the chain's last job (which a worker's
        finalize, holding the job's write lock, conflicts with), in ``tx`` or a
        transaction of the adapter's own that also fails the jobs waiting on the
        chain."""

        async def work(session: AsyncClientSession) -> RevokedChain:
            before = await self._jobs.find_one_and_update(
                control.open_head_query(chain_id),
                control.revoke_update(),
                return_document=ReturnDocument.BEFORE,
                session=session,
            )
            if before is None:
                head = await self._jobs.find_one(
                    control.head_query(chain_id), {"status": 1}, session=session
                )
                if head is None:
                    raise JobNotFoundError(f"no chain has id {chain_id!r}")
                raise ChainEndedError(f"chain {chain_id!r} already ended {head['status']}")
            await self._ended(session, [{**before, "status": JobStatus.CANCELLED.value}])
            chain = await self._chain(session, chain_id)
            assert chain is not None
            return RevokedChain(chain=chain, revoked_lease=control.lease_taken(before))

        return await self._write(tx, work)

    async def resume_job(self, *, tx: AsyncClientSession | None, job_id: str) -> JobRecord:
        async def work(session: AsyncClientSession | None) -> JobRecord:
            document = await self._jobs.find_one_and_update(
                control.resumable_query(job_id),
                control.resume_update(),
                return_document=ReturnDocument.AFTER,
                session=session,
            )
            if document is not None:
                return job_from_document(document)
            state = await self._jobs.find_one({"_id": job_id}, {"status": 1}, session=session)
            if state is None:
                raise JobNotFoundError(f"no job has id {job_id!r}")
            raise JobStateError(
                f"job {job_id!r} is {state['status']}; only a failed or cancelled job that "
                "ended its chain can be retried"
            )

        return await self._run(tx, work)

    async def settle_job(
        self,
        *,
        tx: AsyncClientSession | None,
        job_id: str,
        output: str | None,
        next_job: NewJob | None,
    ) -> SettledJob:
        if (output is None) == (next_job is None):
            raise AdapterError("settle_job takes exactly one of output and next_job")
        next_id = None if next_job is None else next_job.id

        async def work(session: AsyncClientSession) -> SettledJob:
            before = await self._jobs.find_one_and_update(
                control.open_job_query(job_id),
                control.settle_update(output, next_id),
                return_document=ReturnDocument.BEFORE,
                session=session,
            )
            if before is None:
                state = await self._jobs.find_one({"_id": job_id}, {"status": 1}, session=session)
                if state is None:
                    raise JobNotFoundError(f"no job has id {job_id!r}")
                raise ChainEndedError(f"job {job_id!r} already ended {state['status']}")
            created: JobRecord | None = None
            if next_job is not None:
                inserted = await self._insert(session, next_job, inherited(before))
                created = job_from_document(inserted)
            settled = await self._jobs.find_one({"_id": job_id}, session=session)
            assert settled is not None  # written by this transaction
            await self._ended(session, [settled])
            return SettledJob(
                job=job_from_document(settled),
                next_job=created,
                revoked_lease=control.lease_taken(before),
            )

        return await self._write(tx, work)

    async def purge_chains(
        self,
        *,
        tx: AsyncClientSession | None,
        ended_before: datetime,
        statuses: Sequence[JobStatus],
        limit: int,
    ) -> int:
        if limit <= 0 or not statuses:
            return 0

        async def work(session: AsyncClientSession) -> int:
            heads = await self._jobs.find(
                control.purgeable_query(ended_before, statuses),
                {"chain_id": 1},
                sort=control.PURGE_SORT,
                limit=limit,
                session=session,
            ).to_list(None)
            chain_ids = list(dict.fromkeys(str(head["chain_id"]) for head in heads))
            if not chain_ids:
                return 0
            await self._jobs.delete_many(queries.chains_query(chain_ids), session=session)
            await self._blockers.delete_many(edges_of_chains_query(chain_ids), session=session)
            return len(chain_ids)

        return await self._write(tx, work)

    # -- workers -------------------------------------------------------------------

    async def record_worker(
        self, *, tx: AsyncClientSession | None, worker: WorkerInfo, forget_ms: int
    ) -> None:
        """As the port says: two writes (the record, then the forgetting), each atomic."""

        async def work(session: AsyncClientSession | None) -> None:
            await self._workers.update_one(
                {"_id": worker.id}, control.worker_update(worker), upsert=True, session=session
            )
            await self._workers.delete_many(
                control.forgotten_query(worker.id, forget_ms), session=session
            )

        await self._run(tx, work)

    async def remove_worker(self, *, tx: AsyncClientSession | None, worker_id: str) -> None:
        async def work(session: AsyncClientSession | None) -> None:
            await self._workers.delete_one({"_id": worker_id}, session=session)

        await self._run(tx, work)

    async def list_workers(self, *, tx: AsyncClientSession | None) -> list[WorkerRecord]:
        async def work(session: AsyncClientSession | None) -> list[WorkerRecord]:
            found = await self._workers.find({}, sort=[("_id", 1)], session=session).to_list(None)
            return [control.worker_from_document(document) for document in found]

        return await self._run(tx, work)

    # -- observing -------------------------------------------------------------------

    async def count_jobs(self, *, tx: AsyncClientSession | None) -> QueueCounts:
        async def work(session: AsyncClientSession | None) -> QueueCounts:
            cursor = await self._jobs.aggregate(control.count_pipeline(), session=session)
            (document,) = await cursor.to_list(None)
            return control.queue_counts(document)

        return await self._run(tx, work)

    async def queue_position(
        self, *, tx: AsyncClientSession | None, job_id: str
    ) -> QueuePosition | None:
        pipeline = control.position_pipeline(job_id, self.collections.jobs)

        async def work(session: AsyncClientSession | None) -> QueuePosition | None:
            cursor = await self._jobs.aggregate(pipeline, session=session)
            found = await cursor.to_list(None)
            if not found:
                return None
            (document,) = found
            now = utc(document["_now"])
            assert now is not None
            return QueuePosition(
                job=job_from_document(document), now=now, ahead=int(document["_ahead"])
            )

        return await self._run(tx, work)
