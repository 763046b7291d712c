"""Chain starts guarded by a key: deduplicated starts and schedule slots (documents
in :mod:`queuert_mongodb.dedup` and :mod:`queuert_mongodb.schedules`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession

from queuert.records import DedupKey, NewJob, ScheduleSlot
from queuert_mongodb import dedup, schedules
from queuert_mongodb.blocker_ops import BlockerOps
from queuert_mongodb.blockers import edge_documents
from queuert_mongodb.errors import upsert_by_key


class StartOps(BlockerOps):
    """Deduplication (capability ``deduplication``) and schedules (``schedules``); a
    deduplicated start may wait on other chains, hence the blocker operations."""

    async def create_deduplicated_jobs(
        self,
        *,
        tx: AsyncClientSession | None,
        jobs: Sequence[NewJob],
        dedup: Sequence[DedupKey],
        blocker_chain_ids: Sequence[str] | None = None,
        run_on_blocker_failure: bool = False,
    ) -> list[str]:
        """As the port says, in ``tx`` or a transaction of the adapter's own. A start
        racing another transaction for the same key conflicts with it on the key's
        document: without ``tx`` it runs again until that transaction ended (within
        the operation timeout); in ``tx`` it raises
        :class:`~queuert.errors.TransientStateError` for core to retry. With
        ``blocker_chain_ids``, each job inserted waits on those chains; a missing
        chain raises :class:`~queuert.errors.JobNotFoundError` and the transaction
        writes nothing."""
        requests = list(zip(jobs, dedup, strict=True))
        if not requests:
            return []
        blockers = list(blocker_chain_ids or ())

        async def work(session: AsyncClientSession) -> list[str]:
            holders: list[str] = []
            for job, request in requests:
                holders.append(
                    await self._take_key(session, job, request, blockers, run_on_blocker_failure)
                )
            return holders

        return await self._write(tx, work)

    async def _take_key(
        self,
        session: AsyncClientSession,
        job: NewJob,
        request: DedupKey,
        blockers: Sequence[str],
        run_on_blocker_failure: bool,
    ) -> str:
        """Start ``job``'s chain (waiting on ``blockers``, if any) unless the key's
        holder keeps it; return the holder. A kept key writes no wait."""
        key_id = dedup.key_id(job.chain_name, request.key)
        document = await upsert_by_key(
            self._dedup.find_one_and_update(
                {"_id": key_id},
                dedup.take_if_free(job.chain_id),
                upsert=True,
                return_document=ReturnDocument.AFTER,
                session=session,
            )
        )
        holder = dedup.holder_of(document)
        if holder is not None and holder != job.chain_id:
            if await self._keeps_key(session, holder, job.chain_name, request):
                return holder
            await self._dedup.update_one(
                {"_id": key_id}, dedup.take_over(job.chain_id), session=session
            )
        fields = dedup.dedup_fields(request.key)
        if blockers:
            fields.update(await self._wait_on(session, blockers, run_on_blocker_failure))
        await self._insert(session, job, fields)
        if blockers:
            await self._blockers.insert_many(
                edge_documents([(job.id, job.chain_id)], blockers), session=session
            )
        return job.chain_id

    async def _keeps_key(
        self, session: AsyncClientSession, holder: str, chain_name: str, request: DedupKey
    ) -> bool:
        head = await self._jobs.find_one(
            dedup.holder_head_query(holder, request), {"_id": 1}, session=session
        )
        if head is None:
            return False
        if not dedup.needs_window_check(request):
            return True
        assert request.window_ms is not None
        recent = await self._dedup.find_one(
            dedup.within_window_query(chain_name, request.key, request.window_ms),
            {"_id": 1},
            session=session,
        )
        return recent is not None

    # -- schedules -------------------------------------------------------------------

    async def start_scheduled_chain(
        self,
        *,
        tx: AsyncClientSession | None,
        schedule: str,
        slot_time: datetime,
        job: NewJob,
    ) -> bool:
        """As the port says: the slot's document is upserted with ``$setOnInsert`` (an
        existing slot is left unchanged and nothing is written), then the job is
        created, in ``tx`` or a transaction of the adapter's own."""

        async def work(session: AsyncClientSession) -> bool:
            result = await upsert_by_key(
                self._slots.update_one(
                    {"_id": schedules.slot_id(schedule, slot_time)},
                    schedules.slot_insert(schedule, slot_time, job.chain_id),
                    upsert=True,
                    session=session,
                )
            )
            if result.upserted_id is None:
                return False
            await self._insert(session, job)
            return True

        return await self._write(tx, work)

    async def get_last_schedule_slot(
        self, *, tx: AsyncClientSession | None, schedule: str
    ) -> ScheduleSlot | None:
        async def work(session: AsyncClientSession | None) -> ScheduleSlot | None:
            found = await self._slots.find(
                {"schedule": schedule}, sort=schedules.LATEST_SORT, limit=1, session=session
            ).to_list(None)
            return schedules.slot_from_document(found[0]) if found else None

        return await self._run(tx, work)

    async def get_chain_schedule_slot(
        self, *, tx: AsyncClientSession | None, chain_id: str
    ) -> ScheduleSlot | None:
        async def work(session: AsyncClientSession | None) -> ScheduleSlot | None:
            document = await self._slots.find_one({"chain_id": chain_id}, session=session)
            return None if document is None else schedules.slot_from_document(document)

        return await self._run(tx, work)
