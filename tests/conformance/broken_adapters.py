"""Adapters with one deliberate bug each, used to show that the conformance
suite catches that bug. Each is the reference adapter with a single override."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from types import TracebackType

from queuert.adapters.memory_notify import InProcessNotifyAdapter
from queuert.adapters.memory_state import MemoryStateAdapter, MemoryTransaction
from queuert.ports.notify import IdListener, ScheduledSignal, Subscription
from queuert.records import JobFilter, JobRecord, JobStatus, NewJob


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


class DuplicatingSlotsStateAdapter(MemoryStateAdapter):
    """Bug: starts a schedule's slot again each time it is asked to."""

    async def start_scheduled_chain(
        self, *, tx: MemoryTransaction | None, schedule: str, slot_time: datetime, job: NewJob
    ) -> bool:
        await self.create_jobs(tx=tx, jobs=[job])
        return True
