"""Adapters with one deliberate bug each, used to show that the conformance
suite catches that bug. Each is the reference adapter with a single override."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from queuert.adapters.memory_blockers import MemoryBlockers
from queuert.adapters.memory_dedup import MemoryDedup
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
    BlockerRecord,
    ChainFilter,
    ChainRecord,
    DedupKey,
    JobFilter,
    JobRecord,
    JobStatus,
    Lease,
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


class QueuelessChainListingStateAdapter(MemoryStateAdapter):
    """Bug: ignores the queue filter of a chain listing."""

    async def list_chains(
        self, *, tx: MemoryTransaction | None, filter: ChainFilter, after: str | None, limit: int
    ) -> Page[ChainRecord]:
        plain = dataclasses.replace(filter, queues=None)
        return await super().list_chains(tx=tx, filter=plain, after=after, limit=limit)


class NeverClosedStateAdapter(MemoryStateAdapter):
    """Bug: reports every transaction as open, even after it ended."""

    async def is_transaction_open(self, *, tx: MemoryTransaction) -> bool:
        return True


class AcceptsAnyTxStateAdapter(MemoryStateAdapter):
    """Bug: takes whatever it is given as the caller's transaction."""

    async def check_transaction(self, *, tx: object) -> MemoryTransaction:
        return tx  # type: ignore[return-value]


# -- blockers ------------------------------------------------------------------------


class _NeverUnblocks(MemoryBlockers):
    def unblock_one(
        self, store: MemoryStateAdapter, tx: MemoryTransaction, dependent: Any, now: datetime
    ) -> None:
        return None


class NeverUnblockingStateAdapter(MemoryStateAdapter):
    """Bug: a blocked job stays blocked when its blockers complete."""

    def __init__(self) -> None:
        super().__init__()
        self._blockers = _NeverUnblocks()


class _UnblocksAtOnce(MemoryBlockers):
    def unblock_one(
        self, store: MemoryStateAdapter, tx: MemoryTransaction, dependent: Any, now: datetime
    ) -> None:
        self.left[dependent.id] = 1
        super().unblock_one(store, tx, dependent, now)


class FirstBlockerUnblocksStateAdapter(MemoryStateAdapter):
    """Bug: the first blocker chain to complete unblocks the job."""

    def __init__(self) -> None:
        super().__init__()
        self._blockers = _UnblocksAtOnce()


class ContinuationUnblocksStateAdapter(MemoryStateAdapter):
    """Bug: a blocker chain's job that continues the chain counts as its completion."""

    def _finish(
        self,
        tx: MemoryTransaction,
        row: Any,
        status: JobStatus,
        now: datetime,
        *,
        continued: bool = False,
    ) -> None:
        super()._finish(tx, row, status, now)


class _IgnoresFailures(MemoryBlockers):
    def chain_ended(
        self, store: MemoryStateAdapter, tx: MemoryTransaction, row: Any, now: datetime
    ) -> None:
        if row.status is JobStatus.COMPLETED:
            super().chain_ended(store, tx, row, now)

    def attach(
        self,
        store: MemoryStateAdapter,
        tx: MemoryTransaction,
        rows: Sequence[Any],
        chain_ids: Sequence[str],
        now: datetime,
        run_on_failure: bool = False,
    ) -> None:
        alive = [c for c in chain_ids if store._chains[c].last().status is not JobStatus.FAILED]
        super().attach(store, tx, rows, alive or chain_ids[:0], now, run_on_failure)


class FailureIgnoringStateAdapter(MemoryStateAdapter):
    """Bug: a blocker chain that fails or is cancelled leaves its dependents blocked
    (or, already failed, is not waited on at all)."""

    def __init__(self) -> None:
        super().__init__()
        self._blockers = _IgnoresFailures()


class FailureAlwaysFailsStateAdapter(MemoryStateAdapter):
    """Bug: jobs that should run however fail with their failed blocker."""

    async def create_blocked_jobs(
        self,
        *,
        tx: MemoryTransaction | None,
        jobs: Sequence[NewJob],
        blocker_chain_ids: Sequence[str],
        run_on_blocker_failure: bool = False,
    ) -> Sequence[JobRecord]:
        return await super().create_blocked_jobs(
            tx=tx, jobs=jobs, blocker_chain_ids=blocker_chain_ids
        )


class _StaleDecisions(MemoryBlockers):
    def __init__(self) -> None:
        super().__init__()
        self.others_done: dict[str, bool] = {}

    def unblock_one(
        self, store: MemoryStateAdapter, tx: MemoryTransaction, dependent: Any, now: datetime
    ) -> None:
        if self.others_done.get(dependent.id, True):
            self.left[dependent.id] = 1
            super().unblock_one(store, tx, dependent, now)


class ReadThenWriteUnblockStateAdapter(MemoryStateAdapter):
    """Bug: whether a completion unblocks a job is decided from a read taken before
    the completing write, in its own transaction (racy: two blockers completing at
    once each see the other still running)."""

    def __init__(self) -> None:
        super().__init__()
        self._stale = _StaleDecisions()
        self._blockers = self._stale

    async def complete_job(
        self, *, tx: MemoryTransaction | None, lease: Lease, output: str
    ) -> JobRecord:
        row = self._jobs[lease.job_id]
        decisions = {}
        for job_id in self._stale.dependents.get(row.chain_id, ()):
            others = [c for c in self._stale.of[job_id] if c != row.chain_id]
            decisions[job_id] = all(
                self._chains[c].last().status is JobStatus.COMPLETED for c in others
            )
        await asyncio.sleep(0.01)  # the gap between the read and the write
        self._stale.others_done.update(decisions)
        return await super().complete_job(tx=tx, lease=lease, output=output)


class WritesBeforeCheckingStateAdapter(MemoryStateAdapter):
    """Bug: the jobs are written before their blocker chains are checked to exist."""

    async def create_blocked_jobs(
        self,
        *,
        tx: MemoryTransaction | None,
        jobs: Sequence[NewJob],
        blocker_chain_ids: Sequence[str],
        run_on_blocker_failure: bool = False,
    ) -> Sequence[JobRecord]:
        created = await self.create_jobs(tx=tx, jobs=jobs)
        self._blockers.check(self, blocker_chain_ids)
        return created


class FewBlockersStateAdapter(MemoryStateAdapter):
    """Bug: keeps only the first 50 blockers of a job."""

    async def create_blocked_jobs(
        self,
        *,
        tx: MemoryTransaction | None,
        jobs: Sequence[NewJob],
        blocker_chain_ids: Sequence[str],
        run_on_blocker_failure: bool = False,
    ) -> Sequence[JobRecord]:
        return await super().create_blocked_jobs(
            tx=tx,
            jobs=jobs,
            blocker_chain_ids=blocker_chain_ids[:50],
            run_on_blocker_failure=run_on_blocker_failure,
        )


class SortedBlockersStateAdapter(MemoryStateAdapter):
    """Bug: returns a job's blockers in chain id order, not in the order given."""

    async def get_blockers(
        self, *, tx: MemoryTransaction | None, job_id: str
    ) -> list[BlockerRecord]:
        records = await super().get_blockers(tx=tx, job_id=job_id)
        return sorted(records, key=lambda record: record.chain_id)


class SelfDependentStateAdapter(MemoryStateAdapter):
    """Bug: lists the asked chains among their own dependents."""

    async def list_dependent_chains(
        self, *, tx: MemoryTransaction | None, chain_ids: Sequence[str]
    ) -> list[str]:
        found = await super().list_dependent_chains(tx=tx, chain_ids=chain_ids)
        asked = [c for c in chain_ids if c in self._blockers.of]
        return sorted({*found, *asked})


# -- deduplication -------------------------------------------------------------------


class KeyIgnoringStateAdapter(MemoryStateAdapter):
    """Bug: starts every chain, whatever its key."""

    async def create_deduplicated_jobs(
        self,
        *,
        tx: MemoryTransaction | None,
        jobs: Sequence[NewJob],
        dedup: Sequence[DedupKey],
        blocker_chain_ids: Sequence[str] | None = None,
        run_on_blocker_failure: bool = False,
    ) -> list[str]:
        await self.create_jobs(tx=tx, jobs=jobs)
        return [job.chain_id for job in jobs]


class _HoldsForever(MemoryDedup):
    def _holds(
        self,
        store: MemoryStateAdapter,
        holder: tuple[str, datetime],
        dedup: DedupKey,
        now: datetime,
    ) -> bool:
        return True


class KeyNeverReleasedStateAdapter(MemoryStateAdapter):
    """Bug: a key stays held after its chain ended or was deleted, and past its window."""

    def __init__(self) -> None:
        super().__init__()
        self._dedup = _HoldsForever()


class _NameBlind(dict[tuple[str, str], tuple[str, datetime]]):
    """Holders keyed by the key alone: the chain name is dropped."""

    def __contains__(self, slot: object) -> bool:
        return isinstance(slot, tuple) and super().__contains__(("", slot[1]))

    def get(self, slot: tuple[str, str], default: Any = None) -> Any:
        return super().get(("", slot[1]), default)

    def __getitem__(self, slot: tuple[str, str]) -> tuple[str, datetime]:
        return super().__getitem__(("", slot[1]))

    def __setitem__(self, slot: tuple[str, str], value: tuple[str, datetime]) -> None:
        super().__setitem__(("", slot[1]), value)

    def pop(self, slot: tuple[str, str], default: Any = None) -> Any:
        return super().pop(("", slot[1]), default)


class _Unscoped(MemoryDedup):
    def __init__(self) -> None:
        super().__init__()
        self.holders = _NameBlind()


class UnscopedKeyStateAdapter(MemoryStateAdapter):
    """Bug: keys are shared by chains of every name."""

    def __init__(self) -> None:
        super().__init__()
        self._dedup = _Unscoped()


class ReadThenWriteDedupStateAdapter(MemoryStateAdapter):
    """Bug: checks the key in one step and takes it in another (racy)."""

    async def create_deduplicated_jobs(
        self,
        *,
        tx: MemoryTransaction | None,
        jobs: Sequence[NewJob],
        dedup: Sequence[DedupKey],
        blocker_chain_ids: Sequence[str] | None = None,
        run_on_blocker_failure: bool = False,
    ) -> list[str]:
        now = self.now()
        free = [
            not (
                (holder := self._dedup.holders.get((job.chain_name, d.key))) is not None
                and self._dedup._holds(self, holder, d, now)
            )
            for job, d in zip(jobs, dedup, strict=True)
        ]
        await asyncio.sleep(0.01)  # the gap between the check and the write
        taken = [job for job, is_free in zip(jobs, free, strict=True) if is_free]
        await self.create_jobs(tx=tx, jobs=taken)
        for job, d in zip(jobs, dedup, strict=True):
            if job in taken:
                self._dedup.holders[(job.chain_name, d.key)] = (job.chain_id, now)
                self._dedup.keys[job.chain_id] = d.key
        return [
            job.chain_id if is_free else self._dedup.holders[(job.chain_name, d.key)][0]
            for job, d, is_free in zip(jobs, dedup, free, strict=True)
        ]


class DedupFilterIgnoringStateAdapter(MemoryStateAdapter):
    """Bug: listing chains ignores the dedup key filter."""

    async def list_chains(
        self, *, tx: MemoryTransaction | None, filter: ChainFilter, after: str | None, limit: int
    ) -> Page[ChainRecord]:
        return await super().list_chains(
            tx=tx, filter=replace(filter, dedup_key=None), after=after, limit=limit
        )


class ContextDroppingStateAdapter(MemoryStateAdapter):
    """Bug: stores new jobs without the trace context they carry."""

    async def create_jobs(
        self, *, tx: MemoryTransaction | None, jobs: Sequence[NewJob]
    ) -> Sequence[JobRecord]:
        dropped = [replace(job, trace_context=None) for job in jobs]
        return await super().create_jobs(tx=tx, jobs=dropped)


class LimitlessStateAdapter(MemoryStateAdapter):
    """Bug: declares concurrency limits but ignores them."""

    async def acquire_limited_jobs(
        self,
        *,
        tx: MemoryTransaction | None,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        concurrency_limit: int,
        per_key: bool,
    ) -> list[JobRecord]:
        return await self.acquire_jobs(
            tx=tx, queues=[queue], limit=limit, owner=owner, lease_ms=lease_ms
        )


class KeylessLimitStateAdapter(MemoryStateAdapter):
    """Bug: applies a per-key limit to the whole queue."""

    async def acquire_limited_jobs(
        self,
        *,
        tx: MemoryTransaction | None,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        concurrency_limit: int,
        per_key: bool,
    ) -> list[JobRecord]:
        return await super().acquire_limited_jobs(
            tx=tx,
            queue=queue,
            limit=limit,
            owner=owner,
            lease_ms=lease_ms,
            concurrency_limit=concurrency_limit,
            per_key=False,
        )


class RacyLimitStateAdapter(MemoryStateAdapter):
    """Bug: counts the running jobs in one transaction and acquires in another, so
    acquirers that count at the same time all see room."""

    async def acquire_limited_jobs(
        self,
        *,
        tx: MemoryTransaction | None,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        concurrency_limit: int,
        per_key: bool,
    ) -> list[JobRecord]:
        page = await self.list_jobs(
            tx=tx,
            filter=JobFilter(statuses=(JobStatus.RUNNING,), queues=(queue,)),
            after=None,
            limit=1000,
        )
        free = concurrency_limit - len(page.items)
        await asyncio.sleep(0.01)
        if free <= 0:
            return []
        return await self.acquire_jobs(
            tx=tx, queues=[queue], limit=min(limit, free), owner=owner, lease_ms=lease_ms
        )


class StickyLeaseLimitStateAdapter(MemoryStateAdapter):
    """Bug: counts running jobs whose lease expired against the limit until they
    are reaped."""

    async def acquire_limited_jobs(
        self,
        *,
        tx: MemoryTransaction | None,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        concurrency_limit: int,
        per_key: bool,
    ) -> list[JobRecord]:
        page = await self.list_jobs(
            tx=tx,
            filter=JobFilter(statuses=(JobStatus.RUNNING,), queues=(queue,)),
            after=None,
            limit=1000,
        )
        free = concurrency_limit - len(page.items)
        if free <= 0:
            return []
        return await super().acquire_limited_jobs(
            tx=tx,
            queue=queue,
            limit=limit,
            owner=owner,
            lease_ms=lease_ms,
            concurrency_limit=concurrency_limit,
            per_key=per_key,
        )


def _acquire_by_key(
    adapter: MemoryStateAdapter,
    tx: MemoryTransaction,
    queue: str,
    limit: int,
    owner: str,
    lease_ms: int,
    concurrency_limit: int,
    *,
    skip_keyless: bool,
    order: Callable[[Any], Any],
) -> list[JobRecord]:
    """Per-key acquisition as the reference computes it, by a plain scan of the
    queue's jobs, with the bug of its caller: jobs without a key skipped, or
    another order."""
    now = adapter.now()
    rows = [row for row in adapter._jobs.values() if row.queue == queue]
    running: dict[str | None, int] = {}
    for row in rows:
        if row.status is JobStatus.RUNNING and row.leased_until and row.leased_until > now:
            running[row.concurrency_key] = running.get(row.concurrency_key, 0) + 1
    eligible = sorted(
        (row for row in rows if row.status is JobStatus.PENDING and row.scheduled_at <= now),
        key=order,
    )
    acquired: list[JobRecord] = []
    for row in eligible:
        key = row.concurrency_key
        if len(acquired) >= limit or (skip_keyless and key is None):
            continue
        if running.get(key, 0) >= concurrency_limit:
            continue
        running[key] = running.get(key, 0) + 1
        adapter._touch(tx, row)
        row.status = JobStatus.RUNNING
        row.attempt += 1
        row.leased_by = owner
        row.leased_until = now + timedelta(milliseconds=lease_ms)
        row.updated_at = now
        adapter._index(row)
        acquired.append(row.record())
    return acquired


class KeylessLeftBehindStateAdapter(MemoryStateAdapter):
    """Bug: under a per-key limit, never takes a job stored without a key (a key
    comparison that is never true for a missing key)."""

    def _acquire_limited_jobs(
        self,
        tx: MemoryTransaction,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        concurrency_limit: int,
        per_key: bool,
    ) -> list[JobRecord]:
        if not per_key:
            return super()._acquire_limited_jobs(
                tx, queue, limit, owner, lease_ms, concurrency_limit, per_key
            )
        return _acquire_by_key(
            self,
            tx,
            queue,
            limit,
            owner,
            lease_ms,
            concurrency_limit,
            skip_keyless=True,
            order=lambda row: (row.scheduled_at, -row.priority, row.id),
        )


class IdOrderKeyLimitStateAdapter(MemoryStateAdapter):
    """Bug: under a per-key limit, takes jobs in id order, not in acquisition order
    (scheduled time, then priority)."""

    def _acquire_limited_jobs(
        self,
        tx: MemoryTransaction,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        concurrency_limit: int,
        per_key: bool,
    ) -> list[JobRecord]:
        if not per_key:
            return super()._acquire_limited_jobs(
                tx, queue, limit, owner, lease_ms, concurrency_limit, per_key
            )
        return _acquire_by_key(
            self,
            tx,
            queue,
            limit,
            owner,
            lease_ms,
            concurrency_limit,
            skip_keyless=False,
            order=lambda row: row.id,
        )


class UnrecordedLimitStateAdapter(MemoryStateAdapter):
    """Bug: leases of a limited acquisition are not recorded for rollback, so they
    outlive the caller's rolled-back transaction."""

    def _acquire_limited_jobs(
        self,
        tx: MemoryTransaction,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        concurrency_limit: int,
        per_key: bool,
    ) -> list[JobRecord]:
        mark = len(tx._undo)
        acquired = super()._acquire_limited_jobs(
            tx, queue, limit, owner, lease_ms, concurrency_limit, per_key
        )
        del tx._undo[mark:]
        return acquired


class DuplicatingSlotsStateAdapter(MemoryStateAdapter):
    """Bug: starts a schedule's slot again each time it is asked to."""

    async def start_scheduled_chain(
        self, *, tx: MemoryTransaction | None, schedule: str, slot_time: datetime, job: NewJob
    ) -> bool:
        await self.create_jobs(tx=tx, jobs=[job])
        return True
