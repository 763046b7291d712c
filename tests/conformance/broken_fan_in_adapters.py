"""Adapters with one deliberate bug each in what a worker learns of blockers and in
deduplicated starts that wait on blockers (the cases of
:mod:`queuert.conformance.state.fan_in`). Each is the reference adapter with a
single override."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from queuert.adapters.memory_blockers import MemoryBlockers
from queuert.adapters.memory_state import MemoryStateAdapter, MemoryTransaction, _Row
from queuert.control_records import SettledJob
from queuert.records import ChainFilter, ChainRecord, DedupKey, JobRecord, Lease, NewJob, Page


class _Unflagged(MemoryBlockers):
    def attach(
        self,
        store: MemoryStateAdapter,
        tx: MemoryTransaction,
        rows: Sequence[_Row],
        chain_ids: Sequence[str],
        now: datetime,
        run_on_failure: bool = False,
    ) -> None:
        super().attach(store, tx, rows, chain_ids, now, run_on_failure)
        for row in rows:
            row.has_blockers = False
            row.cached = None


class UnflaggedBlockersStateAdapter(MemoryStateAdapter):
    """Bug: a job created with blockers does not say so in its records."""

    def __init__(self) -> None:
        super().__init__()
        self._blockers = _Unflagged()


class SilentUnblockStateAdapter(MemoryStateAdapter):
    """Bug: a completion does not name the queues of the jobs it unblocked."""

    async def complete_job(
        self, *, tx: MemoryTransaction | None, lease: Lease, output: str
    ) -> JobRecord:
        record = await super().complete_job(tx=tx, lease=lease, output=output)
        return dataclasses.replace(record, unblocked_queues=())

    async def settle_job(
        self,
        *,
        tx: MemoryTransaction | None,
        job_id: str,
        output: str | None,
        next_job: NewJob | None,
    ) -> SettledJob:
        settled = await super().settle_job(tx=tx, job_id=job_id, output=output, next_job=next_job)
        return dataclasses.replace(
            settled, job=dataclasses.replace(settled.job, unblocked_queues=())
        )


class SettleUnblocksStateAdapter(MemoryStateAdapter):
    """Bug: completing a job from outside by continuing its chain unblocks the jobs
    waiting on the chain, as if it had ended."""

    async def settle_job(
        self,
        *,
        tx: MemoryTransaction | None,
        job_id: str,
        output: str | None,
        next_job: NewJob | None,
    ) -> SettledJob:
        settled = await super().settle_job(tx=tx, job_id=job_id, output=output, next_job=next_job)
        if next_job is not None:

            def end_chain(own: MemoryTransaction) -> None:
                self._blockers.chain_ended(self, own, self._jobs[job_id], self.now())

            await self._run(tx, end_chain)
        return settled


class BlockerDroppingDedupStateAdapter(MemoryStateAdapter):
    """Bug: a deduplicated start ignores its blockers (starts at once, never checks
    them)."""

    async def create_deduplicated_jobs(
        self,
        *,
        tx: MemoryTransaction | None,
        jobs: Sequence[NewJob],
        dedup: Sequence[DedupKey],
        blocker_chain_ids: Sequence[str] | None = None,
        run_on_blocker_failure: bool = False,
    ) -> list[str]:
        return await super().create_deduplicated_jobs(tx=tx, jobs=jobs, dedup=dedup)


class KeyDroppingNewestListingStateAdapter(MemoryStateAdapter):
    """Bug: a newest-first or windowed listing ignores the dedup key filter."""

    async def list_chains(
        self, *, tx: MemoryTransaction | None, filter: ChainFilter, after: str | None, limit: int
    ) -> Page[ChainRecord]:
        if filter.newest_first or filter.created_after or filter.created_before:
            filter = dataclasses.replace(filter, dedup_key=None)
        return await super().list_chains(tx=tx, filter=filter, after=after, limit=limit)
