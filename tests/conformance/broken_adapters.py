"""Adapters with one deliberate bug each, used to show that the conformance
suite catches that bug. Each is the reference adapter with a single override."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from types import TracebackType

from queuert.adapters.memory_notify import InProcessNotifyAdapter
from queuert.adapters.memory_state import MemoryStateAdapter, MemoryTransaction
from queuert.ports.notify import IdListener, ScheduledSignal, Subscription
from queuert.records import JobRecord, JobStatus, NewJob


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


class ContextDroppingStateAdapter(MemoryStateAdapter):
    """Bug: stores new jobs without the trace context they carry."""

    async def create_jobs(
        self, *, tx: MemoryTransaction | None, jobs: Sequence[NewJob]
    ) -> Sequence[JobRecord]:
        dropped = [replace(job, trace_context=None) for job in jobs]
        return await super().create_jobs(tx=tx, jobs=dropped)


class StatusBlindCountStateAdapter(MemoryStateAdapter):
    """Bug: counts jobs in every status, not only the ones asked for."""

    async def count_jobs(
        self, *, tx: MemoryTransaction | None, statuses: Sequence[JobStatus]
    ) -> dict[tuple[str, JobStatus], int]:
        return await super().count_jobs(tx=tx, statuses=list(JobStatus))
