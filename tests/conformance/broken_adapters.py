"""Adapters with one deliberate bug each, used to show that the conformance
suite catches that bug. Each is the reference adapter with a single override."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from types import TracebackType

from queuert.adapters.memory_notify import InProcessNotifyAdapter
from queuert.adapters.memory_state import MemoryStateAdapter, MemoryTransaction
from queuert.control_records import (
    QueueCounts,
    QueuePosition,
    RevokedChain,
    SettledJob,
    WorkerInfo,
    WorkerRecord,
)
from queuert.errors import AdapterError, JobNotFoundError
from queuert.ports.notify import IdListener, ScheduledSignal, Subscription
from queuert.records import (
    ChainFilter,
    ChainRecord,
    JobFilter,
    JobRecord,
    JobStatus,
    NewJob,
    Page,
)


class DoubleHandingStateAdapter(MemoryStateAdapter):
    """Bug: when no job is eligible, hands out the previous batch again, so two
    acquirers hold the same job."""

    def __init__(self) -> None:
        super().__init__()
        self._last_batch: list[JobRecord] = []

    async def acquire_jobs(
        self,
        *,
        tx: MemoryTransaction | None,
        queues: Sequence[str],
        limit: int,
        owner: str,
        lease_ms: int,
    ) -> list[JobRecord]:
        jobs = await super().acquire_jobs(
            tx=tx, queues=queues, limit=limit, owner=owner, lease_ms=lease_ms
        )
        if jobs:
            self._last_batch = jobs
            return jobs
        return self._last_batch[:limit]


class _CommitAnyway:
    def __init__(self, inner: AbstractAsyncContextManager[MemoryTransaction]) -> None:
        self._inner = inner

    async def __aenter__(self) -> MemoryTransaction:
        return await self._inner.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The bug: the block's exception propagates, but its writes are committed.
        await self._inner.__aexit__(None, None, None)


class LeakyRollbackStateAdapter(MemoryStateAdapter):
    """Bug: a transaction whose block raises keeps its writes."""

    def transaction(self) -> AbstractAsyncContextManager[MemoryTransaction]:
        return _CommitAnyway(super().transaction())


class UnfilteredLeaseLostNotifyAdapter(InProcessNotifyAdapter):
    """Bug: a lease-lost subscription for one job hears about every job."""

    async def subscribe_lease_lost(
        self, *, job_id: str | None, listener: IdListener
    ) -> Subscription:
        return await super().subscribe_lease_lost(job_id=None, listener=listener)


class UnlimitedWakeNotifyAdapter(InProcessNotifyAdapter):
    """Bug: declares wake hints but lets every claim through."""

    async def claim_wake(self, *, signal: ScheduledSignal) -> bool:
        return True


class DetachedCallerStateAdapter(MemoryStateAdapter):
    """Bug: the caller's transaction is dropped, so its writes run in transactions of
    their own and commit at once."""

    async def caller_transaction(self, tx: object) -> MemoryTransaction:
        return None  # type: ignore[return-value]


# -- control and observation from outside a worker -----------------------------------------


class OnlyPendingRevokeStateAdapter(MemoryStateAdapter):
    """Bug: cancelling leaves a running job alone, returns quietly for an ended chain
    and raises a generic error for an unknown one."""

    async def revoke_chain(self, *, tx: MemoryTransaction | None, chain_id: str) -> RevokedChain:
        chain = await self.cancel_chain(tx=tx, chain_id=chain_id)
        if chain is None:
            raise AdapterError(f"nothing to cancel for {chain_id!r}")
        return RevokedChain(chain=chain)


class UnwrittenRevokeStateAdapter(MemoryStateAdapter):
    """Bug: reports the chain cancelled without writing anything."""

    async def revoke_chain(self, *, tx: MemoryTransaction | None, chain_id: str) -> RevokedChain:
        chain = await self.get_chain(tx=tx, chain_id=chain_id)
        if chain is None:
            raise JobNotFoundError(chain_id)
        return RevokedChain(chain=dataclasses.replace(chain, status=JobStatus.CANCELLED))


class BudgetKeepingResumeStateAdapter(MemoryStateAdapter):
    """Bug: a resumed job keeps the attempts it used."""

    async def resume_job(self, *, tx: MemoryTransaction | None, job_id: str) -> JobRecord:
        used = self._jobs[job_id].attempt if job_id in self._jobs else 0
        resumed = await super().resume_job(tx=tx, job_id=job_id)
        self._jobs[job_id].attempt = used
        self._jobs[job_id].cached = None
        return dataclasses.replace(resumed, attempt=used)


class UncheckedResumeStateAdapter(MemoryStateAdapter):
    """Bug: resumes a job whatever its state."""

    async def resume_job(self, *, tx: MemoryTransaction | None, job_id: str) -> JobRecord:
        row = self._jobs.get(job_id)
        if row is not None and row.status is not JobStatus.FAILED:
            row.status = JobStatus.FAILED
            row.next_job_id = None
        return await super().resume_job(tx=tx, job_id=job_id)


class UncheckedSettleStateAdapter(MemoryStateAdapter):
    """Bug: completes a job from outside even when it already ended."""

    async def settle_job(
        self,
        *,
        tx: MemoryTransaction | None,
        job_id: str,
        output: str | None,
        next_job: NewJob | None,
    ) -> SettledJob:
        row = self._jobs.get(job_id)
        if row is not None:
            row.status = JobStatus.PENDING
        return await super().settle_job(tx=tx, job_id=job_id, output=output, next_job=next_job)


class ValueDroppingSettleStateAdapter(MemoryStateAdapter):
    """Bug: completes a job from outside without its output or continuation."""

    async def settle_job(
        self,
        *,
        tx: MemoryTransaction | None,
        job_id: str,
        output: str | None,
        next_job: NewJob | None,
    ) -> SettledJob:
        row = self._jobs.get(job_id)
        if row is None:
            raise JobNotFoundError(job_id)
        async with self.transaction() as own:
            self._finish(own, row, JobStatus.COMPLETED, self.now())
        return SettledJob(job=row.record())


class LeaseHidingSettleStateAdapter(MemoryStateAdapter):
    """Bug: does not report the lease it took from a running job."""

    async def settle_job(
        self,
        *,
        tx: MemoryTransaction | None,
        job_id: str,
        output: str | None,
        next_job: NewJob | None,
    ) -> SettledJob:
        settled = await super().settle_job(tx=tx, job_id=job_id, output=output, next_job=next_job)
        return dataclasses.replace(settled, revoked_lease=None)


class TimelessPurgeStateAdapter(MemoryStateAdapter):
    """Bug: purges ended chains whenever they ended."""

    async def purge_chains(
        self,
        *,
        tx: MemoryTransaction | None,
        ended_before: datetime,
        statuses: Sequence[JobStatus],
        limit: int,
    ) -> int:
        return await super().purge_chains(
            tx=tx, ended_before=datetime(9000, 1, 1, tzinfo=UTC), statuses=statuses, limit=limit
        )


class UnlimitedPurgeStateAdapter(MemoryStateAdapter):
    """Bug: a purge batch ignores its limit."""

    async def purge_chains(
        self,
        *,
        tx: MemoryTransaction | None,
        ended_before: datetime,
        statuses: Sequence[JobStatus],
        limit: int,
    ) -> int:
        return await super().purge_chains(
            tx=tx, ended_before=ended_before, statuses=statuses, limit=1_000_000
        )


class UnorderedWorkersStateAdapter(MemoryStateAdapter):
    """Bug: lists workers in no particular order."""

    async def list_workers(self, *, tx: MemoryTransaction | None) -> list[WorkerRecord]:
        return list(reversed(await super().list_workers(tx=tx)))


class UnforgettingWorkersStateAdapter(MemoryStateAdapter):
    """Bug: never drops the records of workers gone quiet."""

    async def record_worker(
        self, *, tx: MemoryTransaction | None, worker: WorkerInfo, forget_ms: int
    ) -> None:
        await super().record_worker(tx=tx, worker=worker, forget_ms=10**12)


class OldestlessCountsStateAdapter(MemoryStateAdapter):
    """Bug: counts without the earliest pending time."""

    async def count_jobs(self, *, tx: MemoryTransaction | None) -> QueueCounts:
        counts = await super().count_jobs(tx=tx)
        items = [dataclasses.replace(c, oldest_scheduled_at=None) for c in counts.counts]
        return QueueCounts(now=counts.now, counts=items)


class FrontOfQueueStateAdapter(MemoryStateAdapter):
    """Bug: every job is said to be first in its queue."""

    async def queue_position(
        self, *, tx: MemoryTransaction | None, job_id: str
    ) -> QueuePosition | None:
        position = await super().queue_position(tx=tx, job_id=job_id)
        return None if position is None else dataclasses.replace(position, ahead=0)


class OldestFirstListingStateAdapter(MemoryStateAdapter):
    """Bug: lists oldest first whatever the filter asks."""

    async def list_jobs(
        self, *, tx: MemoryTransaction | None, filter: JobFilter, after: str | None, limit: int
    ) -> Page[JobRecord]:
        plain = dataclasses.replace(filter, newest_first=False)
        return await super().list_jobs(tx=tx, filter=plain, after=after, limit=limit)

    async def list_chains(
        self, *, tx: MemoryTransaction | None, filter: ChainFilter, after: str | None, limit: int
    ) -> Page[ChainRecord]:
        plain = dataclasses.replace(filter, newest_first=False)
        return await super().list_chains(tx=tx, filter=plain, after=after, limit=limit)


class WindowlessListingStateAdapter(MemoryStateAdapter):
    """Bug: ignores the creation window of a listing."""

    async def list_jobs(
        self, *, tx: MemoryTransaction | None, filter: JobFilter, after: str | None, limit: int
    ) -> Page[JobRecord]:
        plain = dataclasses.replace(filter, created_after=None, created_before=None)
        return await super().list_jobs(tx=tx, filter=plain, after=after, limit=limit)

    async def list_chains(
        self, *, tx: MemoryTransaction | None, filter: ChainFilter, after: str | None, limit: int
    ) -> Page[ChainRecord]:
        plain = dataclasses.replace(filter, created_after=None, created_before=None)
        return await super().list_chains(tx=tx, filter=plain, after=after, limit=limit)


class NeverClosedStateAdapter(MemoryStateAdapter):
    """Bug: reports every transaction as open, even after it ended."""

    async def is_transaction_open(self, *, tx: MemoryTransaction) -> bool:
        return True


class AcceptsAnyTxStateAdapter(MemoryStateAdapter):
    """Bug: takes whatever it is given as the caller's transaction."""

    async def check_transaction(self, *, tx: object) -> MemoryTransaction:
        return tx  # type: ignore[return-value]
