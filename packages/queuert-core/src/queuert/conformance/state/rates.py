"""Rate limits at acquire: starts counted per sliding window, per queue or per key,
under concurrent acquirers, with held-back jobs left untouched and windows rolling
over.

Every case uses a queue of its own, so that jobs of other cases never count
against its rate. Cases that must not see a window end use hour-long windows.
Cases skip unless the adapter declares ``rate_limits``.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from queuert.conformance.support import (
    LONG_LEASE_MS,
    StateAdapterAny,
    eventually,
    ids,
    new_job,
    unique,
)
from queuert.rate_records import RateAcquisition
from queuert.records import JobRecord, JobStatus, Lease

HOUR_MS = 3_600_000


def _require(adapter: StateAdapterAny) -> None:
    if not adapter.capabilities.rate_limits:
        pytest.skip("adapter declares rate_limits=False")


async def _acquire(
    adapter: StateAdapterAny,
    queue: str,
    *,
    limit: int = 10,
    rate: int,
    window_ms: int = HOUR_MS,
    per_key: bool = False,
    concurrency_limit: int | None = None,
    owner: str = "worker-1",
) -> RateAcquisition:
    return await adapter.acquire_rate_limited_jobs(
        tx=None,
        queue=queue,
        limit=limit,
        owner=owner,
        lease_ms=LONG_LEASE_MS,
        rate=rate,
        window_ms=window_ms,
        per_key=per_key,
        concurrency_limit=concurrency_limit,
    )


def _lease(job: JobRecord) -> Lease:
    assert job.leased_by is not None
    return Lease(job_id=job.id, owner=job.leased_by, attempt=job.attempt)


class RateCases:
    @pytest.mark.asyncio
    async def test_rate_stops_at_the_window_count(self, state_adapter: StateAdapterAny) -> None:
        _require(state_adapter)
        queue = unique("rated")
        created = await state_adapter.create_jobs(tx=None, jobs=[new_job(queue) for _ in range(5)])
        first = await _acquire(state_adapter, queue, rate=3)
        assert len(first.jobs) == 3
        assert all(job.status is JobStatus.RUNNING and job.attempt == 1 for job in first.jobs)
        second = await _acquire(state_adapter, queue, rate=3, owner="worker-2")
        assert second.jobs == [], "more jobs started than the rate allows in one window"
        assert second.next_window_ms is not None, "the held-back jobs were not reported"
        assert 0 <= second.next_window_ms <= HOUR_MS
        held = [j for j in created if j.id not in set(ids(first.jobs))]
        for job in held:
            now = await state_adapter.get_job(tx=None, job_id=job.id)
            assert now is not None
            assert now.status is JobStatus.PENDING and now.attempt == 0, "a held-back job changed"

    @pytest.mark.asyncio
    async def test_finished_job_does_not_free_a_start(self, state_adapter: StateAdapterAny) -> None:
        _require(state_adapter)
        queue = unique("rated")
        await state_adapter.create_jobs(tx=None, jobs=[new_job(queue) for _ in range(3)])
        (started,) = (await _acquire(state_adapter, queue, rate=1)).jobs
        await state_adapter.complete_job(tx=None, lease=_lease(started), output="null")
        again = await _acquire(state_adapter, queue, rate=1)
        assert again.jobs == [], "a job that ended gave its start back to the window"

    @pytest.mark.asyncio
    async def test_parallel_rate_acquires_stay_within_the_rate(
        self, state_adapter: StateAdapterAny, second_state_adapter: StateAdapterAny
    ) -> None:
        _require(state_adapter)
        queue = unique("rated")
        await state_adapter.create_jobs(tx=None, jobs=[new_job(queue) for _ in range(20)])
        adapters = [state_adapter, second_state_adapter]
        results = await asyncio.gather(
            *(
                _acquire(adapters[n % 2], queue, limit=2, rate=3, owner=f"worker-{n}")
                for n in range(10)
            )
        )
        acquired = [job.id for result in results for job in result.jobs]
        assert len(acquired) == len(set(acquired)), "a job was handed to two acquirers"
        assert len(acquired) == 3, f"{len(acquired)} jobs started in a window of rate 3"

    @pytest.mark.asyncio
    async def test_per_key_rate_counts_each_key_without_blocking_others(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require(state_adapter)
        queue = unique("rated-keyed")
        keys = ["a", "a", "a", "b", "b", "c"]
        jobs = [replace(new_job(queue), concurrency_key=key) for key in keys]
        created = await state_adapter.create_jobs(tx=None, jobs=jobs)
        key_of = {job.id: key for job, key in zip(created, keys, strict=True)}
        first = await _acquire(state_adapter, queue, rate=1, per_key=True)
        assert sorted(key_of[job.id] for job in first.jobs) == ["a", "b", "c"]
        second = await _acquire(state_adapter, queue, rate=1, per_key=True)
        assert second.jobs == [] and second.next_window_ms is not None
        other = unique("rated-keyed")
        await state_adapter.create_jobs(
            tx=None, jobs=[replace(new_job(other), concurrency_key="a")]
        )
        (elsewhere,) = (await _acquire(state_adapter, other, rate=1, per_key=True)).jobs
        assert elsewhere.queue == other, "a key's window was shared with another queue"

    @pytest.mark.asyncio
    async def test_rate_window_rolls_over(self, state_adapter: StateAdapterAny) -> None:
        _require(state_adapter)
        queue = unique("rated")
        await state_adapter.create_jobs(tx=None, jobs=[new_job(queue) for _ in range(6)])
        taken = list((await _acquire(state_adapter, queue, rate=2, window_ms=1_000)).jobs)
        assert 1 <= len(taken) <= 2

        async def probe() -> list[JobRecord]:
            result = await _acquire(state_adapter, queue, rate=2, window_ms=1_000)
            assert len(result.jobs) <= 2, "more than the rate started in one window"
            taken.extend(result.jobs)
            return taken if len(taken) >= 5 else []

        # Five jobs need at least three windows of two: the windows must roll over.
        await eventually(probe, what="later windows to start more jobs")

    @pytest.mark.asyncio
    async def test_rate_keeps_a_concurrency_limit_declared_beside_it(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require(state_adapter)
        queue = unique("rated")
        await state_adapter.create_jobs(tx=None, jobs=[new_job(queue) for _ in range(5)])
        first = await _acquire(state_adapter, queue, rate=10, concurrency_limit=2)
        assert len(first.jobs) == 2, "the concurrency limit was not kept under a rate"
        await state_adapter.complete_job(tx=None, lease=_lease(first.jobs[0]), output="null")
        (second,) = (await _acquire(state_adapter, queue, rate=10, concurrency_limit=2)).jobs
        assert second.id not in set(ids(first.jobs))

    @pytest.mark.asyncio
    async def test_rate_window_slides_across_calendar_boundaries(
        self, state_adapter: StateAdapterAny
    ) -> None:
        """Starts are counted over the window ending at each start, not per calendar
        window: a full rate taken late in one second of the store's clock keeps the
        next second's first starts out until a whole window after the first of them.

        Measured on the start times the store recorded (each acquired job's
        ``updated_at``), so how long the test waits never decides the outcome."""
        _require(state_adapter)
        queue = unique("rated")
        window = timedelta(milliseconds=1_000)
        created = await state_adapter.create_jobs(tx=None, jobs=[new_job(queue) for _ in range(8)])
        # Start the first full rate late in a second of the store's clock, where a
        # calendar window would end soon after it.
        clock = created[0].created_at
        fraction = clock.microsecond / 1_000_000
        await asyncio.sleep((0.6 - fraction) % 1.0)
        first = await _acquire(state_adapter, queue, rate=3, window_ms=1_000)
        assert len(first.jobs) == 3
        refused = await _acquire(state_adapter, queue, rate=3, window_ms=1_000)
        assert refused.jobs == [], "more jobs started than the rate allows in one window"
        assert refused.next_window_ms is not None, "the held-back jobs were not reported"
        assert 0 <= refused.next_window_ms <= 1_000
        starts: list[datetime] = [job.updated_at for job in first.jobs]

        async def probe() -> bool:
            result = await _acquire(state_adapter, queue, rate=3, window_ms=1_000)
            starts.extend(job.updated_at for job in result.jobs)
            return len(starts) >= 6

        await eventually(probe, what="later windows to start more jobs")
        for start in starts:
            within = [s for s in starts if start - window < s <= start]
            assert len(within) <= 3, (
                f"{len(within)} jobs started within one window ending at {start} "
                f"(rate 3 per second): {sorted(starts)}"
            )
