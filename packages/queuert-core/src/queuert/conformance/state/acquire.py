"""Acquiring jobs: eligibility, order, limits, lease fields, and no double hand-out."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from queuert.conformance.support import (
    LONG_LEASE_MS,
    OWNER,
    PAST,
    QUEUE,
    StateAdapterAny,
    acquire_one,
    assert_near,
    assert_utc,
    create_one,
    eventually,
    ids,
    new_job,
    slack,
)
from queuert.errors import TransientStateError
from queuert.ids import new_id
from queuert.records import JobRecord, JobStatus


async def _assert_parallel_acquires_distinct(
    adapters: list[StateAdapterAny], *, jobs: int, acquirers: int, limit: int
) -> None:
    """Create ``jobs`` jobs through the first adapter, let ``acquirers`` workers
    acquire up to ``limit`` each at the same time, taking turns over ``adapters``:
    every job is handed out, and to one acquirer only."""
    created = await adapters[0].create_jobs(tx=None, jobs=[new_job() for _ in range(jobs)])
    batches = await asyncio.gather(
        *(
            adapters[n % len(adapters)].acquire_jobs(
                tx=None, queues=[QUEUE], limit=limit, owner=f"worker-{n}", lease_ms=LONG_LEASE_MS
            )
            for n in range(acquirers)
        )
    )
    acquired = [job.id for batch in batches for job in batch]
    assert len(acquired) == len(set(acquired)), "a job was handed to two acquirers"
    assert sorted(acquired) == sorted(ids(created))


class AcquireJobsCases:
    @pytest.mark.asyncio
    async def test_acquire_orders_by_scheduled_at_then_priority_then_id(
        self, state_adapter: StateAdapterAny
    ) -> None:
        t0, t1 = PAST, PAST + timedelta(seconds=1)
        same = sorted(new_id() for _ in range(2))
        jobs = [
            new_job(scheduled_at=t1, priority=9),
            new_job(scheduled_at=t0, priority=0, job_id=same[1]),
            new_job(scheduled_at=t0, priority=5),
            new_job(scheduled_at=t0, priority=0, job_id=same[0]),
            new_job(scheduled_at=t1, priority=-1),
        ]
        await state_adapter.create_jobs(tx=None, jobs=jobs)
        acquired = await state_adapter.acquire_jobs(
            tx=None, queues=[QUEUE], limit=10, owner=OWNER, lease_ms=LONG_LEASE_MS
        )
        expected = [jobs[2].id, same[0], same[1], jobs[0].id, jobs[4].id]
        assert ids(acquired) == expected

    @pytest.mark.asyncio
    async def test_acquire_merges_order_across_queues(self, state_adapter: StateAdapterAny) -> None:
        jobs = [
            new_job(queue, scheduled_at=PAST + timedelta(seconds=offset))
            for queue, offset in [("q1", 3), ("q2", 1), ("q1", 2), ("q2", 4), ("q1", 0)]
        ]
        await state_adapter.create_jobs(tx=None, jobs=jobs)
        acquired = await state_adapter.acquire_jobs(
            tx=None, queues=["q1", "q2"], limit=10, owner=OWNER, lease_ms=LONG_LEASE_MS
        )
        assert ids(acquired) == [jobs[i].id for i in (4, 1, 2, 0, 3)]

    @pytest.mark.asyncio
    async def test_acquire_respects_limit(self, state_adapter: StateAdapterAny) -> None:
        await state_adapter.create_jobs(tx=None, jobs=[new_job() for _ in range(5)])

        async def acquire(limit: int) -> list[JobRecord]:
            return await state_adapter.acquire_jobs(
                tx=None, queues=[QUEUE], limit=limit, owner=OWNER, lease_ms=LONG_LEASE_MS
            )

        assert len(await acquire(2)) == 2
        assert len(await acquire(10)) == 3
        assert await acquire(10) == []

    @pytest.mark.asyncio
    async def test_acquire_takes_only_the_given_queues(
        self, state_adapter: StateAdapterAny
    ) -> None:
        jobs = [new_job("q1"), new_job("q2"), new_job("q3"), new_job("q1")]
        await state_adapter.create_jobs(tx=None, jobs=jobs)
        acquired = await state_adapter.acquire_jobs(
            tx=None, queues=["q1", "q3"], limit=10, owner=OWNER, lease_ms=LONG_LEASE_MS
        )
        assert sorted(ids(acquired)) == sorted([jobs[0].id, jobs[2].id, jobs[3].id])
        other = await state_adapter.get_job(tx=None, job_id=jobs[1].id)
        assert other is not None and other.status is JobStatus.PENDING

    @pytest.mark.asyncio
    async def test_acquire_from_unknown_queue_returns_nothing(
        self, state_adapter: StateAdapterAny
    ) -> None:
        await create_one(state_adapter, new_job("q1"))
        acquired = await state_adapter.acquire_jobs(
            tx=None, queues=["nobody-enqueues-here"], limit=5, owner=OWNER, lease_ms=LONG_LEASE_MS
        )
        assert acquired == []

    @pytest.mark.asyncio
    async def test_future_job_is_not_acquired(self, state_adapter: StateAdapterAny) -> None:
        future = await create_one(state_adapter, new_job(delay_ms=60_000))
        acquired = await state_adapter.acquire_jobs(
            tx=None, queues=[QUEUE], limit=5, owner=OWNER, lease_ms=LONG_LEASE_MS
        )
        assert acquired == []
        assert await state_adapter.get_job(tx=None, job_id=future.id) == future

    @pytest.mark.asyncio
    async def test_delayed_job_is_acquired_once_due(self, state_adapter: StateAdapterAny) -> None:
        created = await create_one(state_adapter, new_job(delay_ms=100))

        async def probe() -> list[JobRecord]:
            return await state_adapter.acquire_jobs(
                tx=None, queues=[QUEUE], limit=1, owner=OWNER, lease_ms=LONG_LEASE_MS
            )

        (acquired,) = await eventually(probe, what="the delayed job to become due")
        assert acquired.id == created.id
        assert acquired.updated_at >= created.scheduled_at

    @pytest.mark.asyncio
    async def test_acquire_sets_status_attempt_and_lease(
        self, state_adapter: StateAdapterAny
    ) -> None:
        created = await create_one(state_adapter)
        acquired = await acquire_one(state_adapter, owner="worker-a", lease_ms=30_000)
        assert acquired.id == created.id
        assert acquired.status is JobStatus.RUNNING
        assert acquired.attempt == 1
        assert acquired.leased_by == "worker-a"
        assert acquired.updated_at >= created.created_at
        assert_near(
            acquired.leased_until,
            acquired.updated_at + timedelta(milliseconds=30_000),
            slack(state_adapter),
        )
        assert acquired.lease.owner == "worker-a" and acquired.lease.attempt == 1
        assert acquired.input == created.input
        assert acquired.scheduled_at == created.scheduled_at
        assert acquired.created_at == created.created_at
        assert_utc(acquired.leased_until, acquired.updated_at)
        assert await state_adapter.get_job(tx=None, job_id=created.id) == acquired

    @pytest.mark.asyncio
    async def test_each_acquisition_counts_an_attempt(self, state_adapter: StateAdapterAny) -> None:
        await create_one(state_adapter)
        first = await acquire_one(state_adapter)
        await state_adapter.reschedule_job(tx=None, lease=first.lease, error=None)
        second = await acquire_one(state_adapter, owner="worker-2")
        assert (first.attempt, second.attempt) == (1, 2)
        assert second.leased_by == "worker-2"

    @pytest.mark.asyncio
    async def test_running_job_is_not_acquired_again(self, state_adapter: StateAdapterAny) -> None:
        await create_one(state_adapter)
        await acquire_one(state_adapter)
        again = await state_adapter.acquire_jobs(
            tx=None, queues=[QUEUE], limit=5, owner="worker-2", lease_ms=LONG_LEASE_MS
        )
        assert again == []

    @pytest.mark.asyncio
    async def test_parallel_acquires_return_distinct_jobs(
        self, state_adapter: StateAdapterAny
    ) -> None:
        await _assert_parallel_acquires_distinct([state_adapter], jobs=40, acquirers=12, limit=5)

    @pytest.mark.asyncio
    async def test_parallel_acquires_across_adapters_return_distinct_jobs(
        self, state_adapter: StateAdapterAny, second_state_adapter: StateAdapterAny
    ) -> None:
        await _assert_parallel_acquires_distinct(
            [state_adapter, second_state_adapter], jobs=30, acquirers=10, limit=4
        )

    @pytest.mark.asyncio
    async def test_open_transactions_acquire_distinct_jobs(
        self, state_adapter: StateAdapterAny, second_state_adapter: StateAdapterAny
    ) -> None:
        if not state_adapter.capabilities.concurrent_transactions:
            pytest.skip("adapter declares concurrent_transactions=False")
        await state_adapter.create_jobs(tx=None, jobs=[new_job() for _ in range(6)])
        async with state_adapter.transaction() as tx1:
            first = await state_adapter.acquire_jobs(
                tx=tx1, queues=[QUEUE], limit=3, owner="worker-1", lease_ms=LONG_LEASE_MS
            )
            try:
                async with second_state_adapter.transaction() as tx2:
                    second = await asyncio.wait_for(
                        second_state_adapter.acquire_jobs(
                            tx=tx2, queues=[QUEUE], limit=3, owner="worker-2", lease_ms=60_000
                        ),
                        timeout=10,
                    )
            except TransientStateError:
                second = []  # a conflict the adapter reports as retryable is allowed
        assert len(first) == 3
        assert not set(ids(first)) & set(ids(second)), "two open transactions took one job"
