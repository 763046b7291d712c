"""Adapters with one deliberate bug each in rate-limited acquisition or in the
concurrency keys of continuations, used to show that the conformance suite's
cases catch it. Each is the reference adapter with a single override."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from queuert.adapters.memory_state import MemoryStateAdapter, MemoryTransaction
from queuert.rate_records import RateAcquisition
from queuert.records import JobFilter, JobRecord, JobStatus, Lease, NewJob


class RatelessStateAdapter(MemoryStateAdapter):
    """Bug: declares rate limits but ignores them."""

    async def acquire_rate_limited_jobs(
        self,
        *,
        tx: MemoryTransaction | None,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        rate: int,
        window_ms: int,
        per_key: bool,
        concurrency_limit: int | None,
    ) -> RateAcquisition:
        jobs = await self.acquire_jobs(
            tx=tx, queues=[queue], limit=limit, owner=owner, lease_ms=lease_ms
        )
        return RateAcquisition(jobs)


class KeylessRateStateAdapter(MemoryStateAdapter):
    """Bug: applies a per-key rate to the whole queue."""

    async def acquire_rate_limited_jobs(
        self,
        *,
        tx: MemoryTransaction | None,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        rate: int,
        window_ms: int,
        per_key: bool,
        concurrency_limit: int | None,
    ) -> RateAcquisition:
        return await super().acquire_rate_limited_jobs(
            tx=tx,
            queue=queue,
            limit=limit,
            owner=owner,
            lease_ms=lease_ms,
            rate=rate,
            window_ms=window_ms,
            per_key=False,
            concurrency_limit=concurrency_limit,
        )


class RacyRateStateAdapter(MemoryStateAdapter):
    """Bug: counts the jobs started in one transaction and acquires in another, so
    acquirers that count at the same time all see room."""

    async def acquire_rate_limited_jobs(
        self,
        *,
        tx: MemoryTransaction | None,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        rate: int,
        window_ms: int,
        per_key: bool,
        concurrency_limit: int | None,
    ) -> RateAcquisition:
        page = await self.list_jobs(
            tx=tx,
            filter=JobFilter(statuses=(JobStatus.RUNNING, JobStatus.COMPLETED), queues=(queue,)),
            after=None,
            limit=1000,
        )
        free = rate - len(page.items)
        await asyncio.sleep(0.01)
        if free <= 0:
            return RateAcquisition([], window_ms)
        jobs = await self.acquire_jobs(
            tx=tx, queues=[queue], limit=min(limit, free), owner=owner, lease_ms=lease_ms
        )
        return RateAcquisition(jobs)


class EndlessWindowStateAdapter(MemoryStateAdapter):
    """Bug: counts every start in one window that never ends."""

    async def acquire_rate_limited_jobs(
        self,
        *,
        tx: MemoryTransaction | None,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        rate: int,
        window_ms: int,
        per_key: bool,
        concurrency_limit: int | None,
    ) -> RateAcquisition:
        return await super().acquire_rate_limited_jobs(
            tx=tx,
            queue=queue,
            limit=limit,
            owner=owner,
            lease_ms=lease_ms,
            rate=rate,
            window_ms=10**15,
            per_key=per_key,
            concurrency_limit=concurrency_limit,
        )


class FixedWindowRateStateAdapter(MemoryStateAdapter):
    """Bug: counts starts per calendar window of the clock (aligned to the epoch), so
    two full windows back to back start up to twice the rate within one window's
    length across their boundary."""

    def __init__(self) -> None:
        super().__init__()
        # Per (queue, key): the start of the window last counted in (ms since the
        # epoch) and the jobs started within it.
        self._fixed: dict[tuple[str, str], tuple[int, int]] = {}

    async def acquire_rate_limited_jobs(
        self,
        *,
        tx: MemoryTransaction | None,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        rate: int,
        window_ms: int,
        per_key: bool,
        concurrency_limit: int | None,
    ) -> RateAcquisition:
        now_ms = (self.now() - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
        window_start = now_ms // window_ms * window_ms
        start, started = self._fixed.get((queue, ""), (window_start, 0))
        used = started if start >= window_start else 0
        if used >= rate:
            return RateAcquisition([], window_start + window_ms - now_ms)
        jobs = await self.acquire_jobs(
            tx=tx, queues=[queue], limit=min(limit, rate - used), owner=owner, lease_ms=lease_ms
        )
        self._fixed[(queue, "")] = (window_start, used + len(jobs))
        return RateAcquisition(jobs, window_start + window_ms - now_ms)


class KeyDroppingContinuationStateAdapter(MemoryStateAdapter):
    """Bug: stores a continuation without its concurrency key."""

    async def continue_job(
        self, *, tx: MemoryTransaction | None, lease: Lease, next_job: NewJob
    ) -> JobRecord:
        dropped = replace(next_job, concurrency_key=None)
        return await super().continue_job(tx=tx, lease=lease, next_job=dropped)
