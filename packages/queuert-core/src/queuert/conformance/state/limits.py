"""Concurrency limits at acquire: per queue, per key, under concurrent acquirers,
with expired leases freeing their place and held-back jobs left untouched.

Every case uses a queue of its own, so that jobs of other cases never count
against its limit. Cases skip unless the adapter declares
``concurrency_limits``.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from queuert.conformance.state.transactions import Rollback
from queuert.conformance.support import (
    LONG_LEASE_MS,
    PAST,
    SHORT_LEASE_MS,
    StateAdapterAny,
    eventually,
    ids,
    new_job,
    unique,
)
from queuert.records import JobRecord, JobStatus, Lease


def _require(adapter: StateAdapterAny) -> None:
    if not adapter.capabilities.concurrency_limits:
        pytest.skip("adapter declares concurrency_limits=False")


async def _acquire(
    adapter: StateAdapterAny,
    queue: str,
    *,
    limit: int = 10,
    concurrency_limit: int,
    per_key: bool = False,
    owner: str = "worker-1",
    lease_ms: int = LONG_LEASE_MS,
) -> list[JobRecord]:
    return await adapter.acquire_limited_jobs(
        tx=None,
        queue=queue,
        limit=limit,
        owner=owner,
        lease_ms=lease_ms,
        concurrency_limit=concurrency_limit,
        per_key=per_key,
    )


def _lease(job: JobRecord) -> Lease:
    assert job.leased_by is not None
    return Lease(job_id=job.id, owner=job.leased_by, attempt=job.attempt)


class LimitCases:
    @pytest.mark.asyncio
    async def test_limited_acquire_stops_at_the_queue_limit(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require(state_adapter)
        queue = unique("limited")
        created = await state_adapter.create_jobs(tx=None, jobs=[new_job(queue) for _ in range(5)])
        first = await _acquire(state_adapter, queue, concurrency_limit=3)
        assert len(first) == 3
        assert all(job.status is JobStatus.RUNNING and job.attempt == 1 for job in first)
        assert await _acquire(state_adapter, queue, concurrency_limit=3, owner="worker-2") == []
        held = [j for j in created if j.id not in set(ids(first))]
        for job in held:
            now = await state_adapter.get_job(tx=None, job_id=job.id)
            assert now is not None
            assert now.status is JobStatus.PENDING and now.attempt == 0, "a held-back job changed"

    @pytest.mark.asyncio
    async def test_finished_job_frees_its_place(self, state_adapter: StateAdapterAny) -> None:
        _require(state_adapter)
        queue = unique("limited")
        await state_adapter.create_jobs(tx=None, jobs=[new_job(queue) for _ in range(3)])
        (running,) = await _acquire(state_adapter, queue, concurrency_limit=1)
        assert await _acquire(state_adapter, queue, concurrency_limit=1) == []
        await state_adapter.complete_job(tx=None, lease=_lease(running), output="null")
        (second,) = await _acquire(state_adapter, queue, concurrency_limit=1)
        assert second.id != running.id

    @pytest.mark.asyncio
    async def test_expired_lease_frees_its_place_before_reaping(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require(state_adapter)
        queue = unique("limited")
        await state_adapter.create_jobs(tx=None, jobs=[new_job(queue) for _ in range(2)])
        (expiring,) = await _acquire(
            state_adapter, queue, concurrency_limit=1, lease_ms=SHORT_LEASE_MS
        )

        async def probe() -> list[JobRecord]:
            return await _acquire(state_adapter, queue, concurrency_limit=1, owner="worker-2")

        (taken,) = await eventually(probe, what="the expired lease to free its place")
        assert taken.id != expiring.id
        still = await state_adapter.get_job(tx=None, job_id=expiring.id)
        assert still is not None and still.status is JobStatus.RUNNING, "it was not reaped"

    @pytest.mark.asyncio
    async def test_parallel_limited_acquires_stay_within_the_limit(
        self, state_adapter: StateAdapterAny, second_state_adapter: StateAdapterAny
    ) -> None:
        _require(state_adapter)
        queue = unique("limited")
        await state_adapter.create_jobs(tx=None, jobs=[new_job(queue) for _ in range(20)])
        adapters = [state_adapter, second_state_adapter]
        batches = await asyncio.gather(
            *(
                _acquire(adapters[n % 2], queue, limit=2, concurrency_limit=3, owner=f"worker-{n}")
                for n in range(10)
            )
        )
        acquired = [job.id for batch in batches for job in batch]
        assert len(acquired) == len(set(acquired)), "a job was handed to two acquirers"
        assert len(acquired) == 3, f"{len(acquired)} jobs running under a limit of 3"

    @pytest.mark.asyncio
    async def test_per_key_limit_holds_each_key_without_blocking_others(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require(state_adapter)
        queue = unique("keyed")
        keys = ["a", "a", "a", "b", "b", "c"]
        jobs = [replace(new_job(queue), concurrency_key=key) for key in keys]
        created = await state_adapter.create_jobs(tx=None, jobs=jobs)
        key_of = {job.id: key for job, key in zip(created, keys, strict=True)}
        first = await _acquire(state_adapter, queue, concurrency_limit=1, per_key=True)
        assert sorted(key_of[job.id] for job in first) == ["a", "b", "c"]
        assert await _acquire(state_adapter, queue, concurrency_limit=1, per_key=True) == []
        done = next(job for job in first if key_of[job.id] == "a")
        await state_adapter.complete_job(tx=None, lease=_lease(done), output="null")
        (again,) = await _acquire(state_adapter, queue, concurrency_limit=1, per_key=True)
        assert key_of[again.id] == "a"

    @pytest.mark.asyncio
    async def test_per_key_limit_of_two_counts_running_jobs_of_the_key(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require(state_adapter)
        queue = unique("keyed")
        keys = ["a", "a", "a", "b"]
        jobs = [replace(new_job(queue), concurrency_key=key) for key in keys]
        created = await state_adapter.create_jobs(tx=None, jobs=jobs)
        key_of = {job.id: key for job, key in zip(created, keys, strict=True)}
        (one,) = await _acquire(state_adapter, queue, limit=1, concurrency_limit=2, per_key=True)
        assert key_of[one.id] == "a"
        rest = await _acquire(state_adapter, queue, concurrency_limit=2, per_key=True)
        assert sorted(key_of[job.id] for job in rest) == ["a", "b"]

    @pytest.mark.asyncio
    async def test_per_key_limit_counts_jobs_without_a_key_as_one_group(
        self, state_adapter: StateAdapterAny
    ) -> None:
        # Continuations and some starts carry no key: they are neither left behind
        # nor each a group of their own.
        _require(state_adapter)
        queue = unique("keyed")
        keys = [None, None, None, "a"]
        jobs = [replace(new_job(queue), concurrency_key=key) for key in keys]
        created = await state_adapter.create_jobs(tx=None, jobs=jobs)
        key_of = {job.id: key for job, key in zip(created, keys, strict=True)}
        first = await _acquire(state_adapter, queue, concurrency_limit=1, per_key=True)
        assert sorted(str(key_of[job.id]) for job in first) == ["None", "a"]
        assert await _acquire(state_adapter, queue, concurrency_limit=1, per_key=True) == []
        done = next(job for job in first if key_of[job.id] is None)
        await state_adapter.complete_job(tx=None, lease=_lease(done), output="null")
        (again,) = await _acquire(state_adapter, queue, concurrency_limit=1, per_key=True)
        assert key_of[again.id] is None and again.id != done.id

    @pytest.mark.asyncio
    async def test_expired_lease_frees_its_keys_place_before_reaping(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require(state_adapter)
        queue = unique("keyed")
        jobs = [replace(new_job(queue), concurrency_key="a") for _ in range(2)]
        await state_adapter.create_jobs(tx=None, jobs=jobs)
        (expiring,) = await _acquire(
            state_adapter, queue, concurrency_limit=1, per_key=True, lease_ms=SHORT_LEASE_MS
        )

        async def probe() -> list[JobRecord]:
            return await _acquire(
                state_adapter, queue, concurrency_limit=1, per_key=True, owner="worker-2"
            )

        (taken,) = await eventually(probe, what="the expired lease to free its key's place")
        assert taken.id != expiring.id
        still = await state_adapter.get_job(tx=None, job_id=expiring.id)
        assert still is not None and still.status is JobStatus.RUNNING, "it was not reaped"

    @pytest.mark.asyncio
    async def test_per_key_limit_takes_each_keys_jobs_in_acquisition_order(
        self, state_adapter: StateAdapterAny
    ) -> None:
        # Within a key as across keys: earlier scheduled first, then higher priority;
        # the ids run the other way, so that id order takes the wrong job of each key.
        _require(state_adapter)
        queue = unique("keyed")
        prefix = unique("job")
        later = PAST + timedelta(hours=1)
        specs = [("a", 0, PAST), ("a", 5, PAST), ("b", 0, later), ("b", 0, PAST)]
        jobs = [
            replace(
                new_job(queue, priority=priority, scheduled_at=at, job_id=f"{prefix}-{n}"),
                concurrency_key=key,
            )
            for n, (key, priority, at) in enumerate(specs)
        ]
        created = await state_adapter.create_jobs(tx=None, jobs=jobs)
        first = await _acquire(state_adapter, queue, concurrency_limit=1, per_key=True)
        assert sorted(ids(first)) == sorted([created[1].id, created[3].id])

    @pytest.mark.asyncio
    async def test_per_key_limit_finds_keys_with_room_behind_a_deep_backlog_of_a_full_key(
        self, state_adapter: StateAdapterAny
    ) -> None:
        # The jobs of a full key fill the front of the backlog, several times the jobs
        # asked for: those behind them, of other keys and without a key, are still
        # taken, in acquisition order.
        _require(state_adapter)
        queue = unique("keyed")
        prefix = unique("job")
        keys = ["a", *["a"] * 6, "b", "b", None, "c"]
        jobs = [
            replace(
                new_job(
                    queue,
                    scheduled_at=PAST + timedelta(seconds=n),
                    job_id=f"{prefix}-{n:02d}",
                ),
                concurrency_key=key,
            )
            for n, key in enumerate(keys)
        ]
        await state_adapter.create_jobs(tx=None, jobs=jobs[:1])
        (running,) = await _acquire(
            state_adapter, queue, limit=1, concurrency_limit=1, per_key=True
        )
        assert running.id == jobs[0].id
        await state_adapter.create_jobs(tx=None, jobs=jobs[1:])
        by_id = {job.id: n for n, job in enumerate(jobs)}
        first = await _acquire(state_adapter, queue, limit=2, concurrency_limit=1, per_key=True)
        assert sorted(by_id[job.id] for job in first) == [7, 9], "b's first, then no key"
        rest = await _acquire(state_adapter, queue, concurrency_limit=1, per_key=True)
        assert [by_id[job.id] for job in rest] == [10], "only c has room left"

    @pytest.mark.asyncio
    async def test_rolled_back_limited_acquire_leaves_its_jobs_and_places_free(
        self, state_adapter: StateAdapterAny
    ) -> None:
        # The acquisition runs in the caller's transaction: rolled back, its jobs are
        # eligible again and no longer hold places under the limit.
        _require(state_adapter)
        queue = unique("keyed")
        keys = ["a", "a", "b"]
        jobs = [replace(new_job(queue), concurrency_key=key) for key in keys]
        created = await state_adapter.create_jobs(tx=None, jobs=jobs)
        with pytest.raises(Rollback):
            async with state_adapter.transaction() as tx:
                inside = await state_adapter.acquire_limited_jobs(
                    tx=tx,
                    queue=queue,
                    limit=10,
                    owner="worker-1",
                    lease_ms=LONG_LEASE_MS,
                    concurrency_limit=1,
                    per_key=True,
                )
                assert len(inside) == 2
                raise Rollback
        for job in created:
            now = await state_adapter.get_job(tx=None, job_id=job.id)
            assert now is not None and now.status is JobStatus.PENDING and now.attempt == 0
        again = await _acquire(state_adapter, queue, concurrency_limit=1, per_key=True)
        assert sorted(ids(again)) == sorted(ids(inside))
