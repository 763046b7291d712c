"""The blocker operations of the MongoDB state adapter: jobs that wait on other
chains (see :mod:`queuert_mongodb.blockers` for the documents and why it is
race-free)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from queuert.blockers import initial_wait
from queuert.records import BlockerRecord, JobRecord, JobStatus, Lease, NewJob
from queuert_mongodb import queries
from queuert_mongodb.base import MongoBase
from queuert_mongodb.blockers import (
    EDGE_SORT,
    MARK_DEPENDED,
    dependent_chain_ids,
    dependents_query,
    edge_documents,
    heads_query,
    job_edges_query,
    waiting_fields,
)
from queuert_mongodb.documents import job_from_document


class BlockerOps(MongoBase):
    """Blocked jobs (capability ``blockers``)."""

    async def create_blocked_jobs(
        self,
        *,
        tx: AsyncClientSession | None,
        jobs: Sequence[NewJob],
        blocker_chain_ids: Sequence[str],
        run_on_blocker_failure: bool = False,
    ) -> Sequence[JobRecord]:
        """As the port says, in ``tx`` or a transaction of the adapter's own. Raises
        :class:`~queuert.errors.JobNotFoundError` for a missing blocker chain before
        anything is written (``tx`` stays usable)."""
        if not jobs:
            return []

        async def work(session: AsyncClientSession) -> list[JobRecord]:
            extra = await self._wait_on(session, blocker_chain_ids, run_on_blocker_failure)
            records = await self._insert_many(session, jobs, extra)
            await self._blockers.insert_many(
                edge_documents([(j.id, j.chain_id) for j in jobs], blocker_chain_ids),
                session=session,
            )
            return records

        return await self._write(tx, work)

    async def continue_blocked_job(
        self,
        *,
        tx: AsyncClientSession | None,
        lease: Lease,
        next_job: NewJob,
        blocker_chain_ids: Sequence[str],
        run_on_blocker_failure: bool = False,
    ) -> JobRecord:
        async def work(session: AsyncClientSession) -> JobRecord:
            extra = await self._wait_on(session, blocker_chain_ids, run_on_blocker_failure)
            document = await self._continue(session, lease, next_job, extra)
            await self._blockers.insert_many(
                edge_documents([(next_job.id, next_job.chain_id)], blocker_chain_ids),
                session=session,
            )
            # A blocker that already failed fails the new job, which ends its chain.
            await self._ended(session, [document])
            return job_from_document(document)

        return await self._write(tx, work)

    async def _wait_on(
        self, session: AsyncClientSession, chain_ids: Sequence[str], run_on_failure: bool
    ) -> dict[str, Any]:
        """The fields of a job waiting on ``chain_ids``, after writing to each chain's
        last job (which a concurrent end of the chain conflicts with). Raises
        :class:`~queuert.errors.JobNotFoundError` for a missing chain before writing."""
        heads = await self._jobs.find(
            heads_query(list(dict.fromkeys(chain_ids))),
            {"chain_id": 1, "status": 1},
            session=session,
        ).to_list(None)
        statuses = {str(head["chain_id"]): str(head["status"]) for head in heads}
        status, left, error = initial_wait(statuses, chain_ids, run_on_failure)
        # Matching on next_job_id too: a chain that continued since the read is
        # written by its continuation's transaction, which this write conflicts with.
        await self._jobs.update_many(
            {**queries.ids_query([head["_id"] for head in heads]), "next_job_id": None},
            MARK_DEPENDED,
            session=session,
        )
        return waiting_fields(status, left, error, run_on_failure)

    async def get_blockers(
        self, *, tx: AsyncClientSession | None, job_id: str
    ) -> list[BlockerRecord]:
        async def work(session: AsyncClientSession | None) -> list[BlockerRecord]:
            edges = await self._blockers.find(
                job_edges_query(job_id), sort=EDGE_SORT, session=session
            ).to_list(None)
            if not edges:
                return []
            chain_ids = list(dict.fromkeys(str(edge["blocker_chain_id"]) for edge in edges))
            heads = await self._jobs.find(heads_query(chain_ids), session=session).to_list(None)
            by_chain = {head["chain_id"]: head for head in heads}
            return [
                BlockerRecord(
                    chain_id=head["chain_id"],
                    chain_name=head["chain_name"],
                    status=JobStatus(head["status"]),
                    output=head.get("output"),
                )
                for head in (by_chain.get(edge["blocker_chain_id"]) for edge in edges)
                if head is not None
            ]

        return await self._run(tx, work)

    async def list_dependent_chains(
        self, *, tx: AsyncClientSession | None, chain_ids: Sequence[str]
    ) -> list[str]:
        if not chain_ids:
            return []

        async def work(session: AsyncClientSession | None) -> list[str]:
            edges = await self._blockers.find(
                dependents_query(chain_ids), {"chain_id": 1}, session=session
            ).to_list(None)
            return dependent_chain_ids(edges)

        return await self._run(tx, work)
