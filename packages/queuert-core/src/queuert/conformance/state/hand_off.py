"""Hand-off at completion: a job completed with
:meth:`~queuert.ports.state.StateAdapter.complete_job_and_hand_off` passes its
place under its queue's concurrency limit (per key, with ``per_key``) to the
next due job, in acquisition order, leased to the same owner; never when that
would raise the number of running jobs, when the completed job's lease was
close to its end, or when the lease was lost.

Every case uses a queue of its own, so that jobs of other cases never count
against its limit. Cases skip unless the adapter declares ``hand_off`` (and
``concurrency_limits``, which they use to start jobs under a limit).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from queuert.conformance.support import (
    LONG_LEASE_MS,
    PAST,
    StateAdapterAny,
    assert_near,
    ids,
    new_job,
    slack,
    unique,
)
from queuert.errors import LeaseLostError
from queuert.records import JobFilter, JobRecord, JobStatus, Lease, NewJob

OUTPUT = '{"done": true}'
MARGIN_MS = 1_000
"""A margin well within :data:`LONG_LEASE_MS`: a job just leased has it left."""


def _require(adapter: StateAdapterAny) -> None:
    if not adapter.capabilities.hand_off:
        pytest.skip("adapter declares hand_off=False")
    if not adapter.capabilities.concurrency_limits:
        pytest.skip("adapter declares concurrency_limits=False")


def _in_order(queue: str, count: int, keys: list[str | None] | None = None) -> list[NewJob]:
    """``count`` jobs of ``queue`` due in the order given, one second apart; their
    ids run the other way, so that id order is not acquisition order."""
    prefix = unique("job")
    return [
        replace(
            new_job(
                queue,
                scheduled_at=PAST + timedelta(seconds=n),
                job_id=f"{prefix}-{count - n:03d}",
            ),
            concurrency_key=keys[n] if keys is not None else None,
        )
        for n in range(count)
    ]


async def _acquire(
    adapter: StateAdapterAny,
    queue: str,
    *,
    concurrency_limit: int,
    per_key: bool = False,
    limit: int = 10,
    owner: str = "worker-1",
) -> list[JobRecord]:
    return await adapter.acquire_limited_jobs(
        tx=None,
        queue=queue,
        limit=limit,
        owner=owner,
        lease_ms=LONG_LEASE_MS,
        concurrency_limit=concurrency_limit,
        per_key=per_key,
    )


async def _hand_off(
    adapter: StateAdapterAny,
    lease: Lease,
    *,
    concurrency_limit: int,
    per_key: bool = False,
    lease_ms: int = LONG_LEASE_MS,
    lease_margin_ms: int = MARGIN_MS,
) -> tuple[JobRecord, JobRecord | None]:
    return await adapter.complete_job_and_hand_off(
        lease=lease,
        output=OUTPUT,
        lease_ms=lease_ms,
        concurrency_limit=concurrency_limit,
        per_key=per_key,
        lease_margin_ms=lease_margin_ms,
    )


async def _running(adapter: StateAdapterAny, queue: str) -> list[str]:
    page = await adapter.list_jobs(
        tx=None,
        filter=JobFilter(statuses=(JobStatus.RUNNING,), queues=(queue,)),
        after=None,
        limit=1000,
    )
    return ids(page.items)


async def _status(adapter: StateAdapterAny, job_id: str) -> tuple[JobStatus, int]:
    job = await adapter.get_job(tx=None, job_id=job_id)
    assert job is not None, f"job {job_id} is gone"
    return job.status, job.attempt


class HandOffCases:
    @pytest.mark.asyncio
    async def test_hand_off_leases_the_next_job_of_the_queue_to_the_owner(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require(state_adapter)
        queue = unique("handed")
        jobs = _in_order(queue, 4)
        await state_adapter.create_jobs(tx=None, jobs=jobs)
        first = await _acquire(state_adapter, queue, concurrency_limit=2)
        assert ids(first) == [jobs[0].id, jobs[1].id]
        done, handed = await _hand_off(state_adapter, first[0].lease, concurrency_limit=2)
        assert done.id == jobs[0].id
        assert done.status is JobStatus.COMPLETED and done.output == OUTPUT
        assert done.leased_by is None
        assert handed is not None, "no job was handed the completed job's place"
        assert handed.id == jobs[2].id, "not the next job in acquisition order"
        assert handed.status is JobStatus.RUNNING and handed.attempt == 1
        assert handed.leased_by == "worker-1"
        assert handed.lease.owner == "worker-1" and handed.lease.attempt == 1
        assert_near(
            handed.leased_until,
            handed.updated_at + timedelta(milliseconds=LONG_LEASE_MS),
            slack(state_adapter),
        )
        assert_near(handed.updated_at, done.updated_at, slack(state_adapter))
        assert await state_adapter.get_job(tx=None, job_id=handed.id) == handed
        stored = await state_adapter.get_job(tx=None, job_id=done.id)
        assert stored is not None and stored.status is JobStatus.COMPLETED
        assert stored.output == OUTPUT
        assert sorted(await _running(state_adapter, queue)) == sorted([jobs[1].id, jobs[2].id])
        assert await _acquire(state_adapter, queue, concurrency_limit=2, owner="worker-2") == []
        assert await _status(state_adapter, jobs[3].id) == (JobStatus.PENDING, 0)

    @pytest.mark.asyncio
    async def test_hand_off_per_key_stays_within_the_completed_jobs_key(
        self, state_adapter: StateAdapterAny
    ) -> None:
        # c's second job is due before a's: the next job of the queue is not the
        # next job of the key.
        _require(state_adapter)
        queue = unique("handed-keyed")
        jobs = _in_order(queue, 6, keys=["a", "b", "c", "c", "a", "a"])
        a1, b1, c1, c2, a2, a3 = jobs
        await state_adapter.create_jobs(tx=None, jobs=jobs)
        first = await _acquire(state_adapter, queue, concurrency_limit=1, per_key=True)
        assert ids(first) == [a1.id, b1.id, c1.id]
        _, handed = await _hand_off(
            state_adapter, first[0].lease, concurrency_limit=1, per_key=True
        )
        assert handed is not None, "a's place was not handed on"
        assert handed.id == a2.id, "a's place went to a job of another key"
        done, none = await _hand_off(
            state_adapter, first[1].lease, concurrency_limit=1, per_key=True
        )
        assert none is None, "b's place was handed to a job of another key"
        assert done.id == b1.id and done.status is JobStatus.COMPLETED
        for waiting in (c2, a3):
            assert await _status(state_adapter, waiting.id) == (JobStatus.PENDING, 0)
        assert sorted(await _running(state_adapter, queue)) == sorted([c1.id, a2.id])

    @pytest.mark.asyncio
    async def test_hand_off_per_key_hands_a_keyless_place_to_a_keyless_job(
        self, state_adapter: StateAdapterAny
    ) -> None:
        # Jobs without a key are one group: the place of one goes to the next of
        # them, past the jobs of a key due before it.
        _require(state_adapter)
        queue = unique("handed-keyless")
        jobs = _in_order(queue, 4, keys=[None, "a", "a", None])
        none1, a1, a2, none2 = jobs
        await state_adapter.create_jobs(tx=None, jobs=jobs)
        first = await _acquire(state_adapter, queue, concurrency_limit=1, per_key=True)
        assert ids(first) == [none1.id, a1.id]
        _, handed = await _hand_off(
            state_adapter, first[0].lease, concurrency_limit=1, per_key=True
        )
        assert handed is not None and handed.id == none2.id
        assert await _status(state_adapter, a2.id) == (JobStatus.PENDING, 0)

    @pytest.mark.asyncio
    async def test_hand_off_per_key_counts_keyless_jobs_as_one_group(
        self, state_adapter: StateAdapterAny
    ) -> None:
        # Two jobs without a key running, one allowed per key: they are one group
        # over its limit, so the place of one is not handed on.
        _require(state_adapter)
        queue = unique("handed-keyless")
        jobs = _in_order(queue, 3)
        await state_adapter.create_jobs(tx=None, jobs=jobs)
        first = await state_adapter.acquire_jobs(
            tx=None, queues=[queue], limit=2, owner="worker-1", lease_ms=LONG_LEASE_MS
        )
        assert ids(first) == [jobs[0].id, jobs[1].id]
        done, handed = await _hand_off(
            state_adapter, first[0].lease, concurrency_limit=1, per_key=True
        )
        assert handed is None, "a place was handed on over the keyless group's limit"
        assert done.status is JobStatus.COMPLETED
        assert await _status(state_adapter, jobs[2].id) == (JobStatus.PENDING, 0)

    @pytest.mark.asyncio
    async def test_no_hand_off_when_the_lease_is_within_the_margin_of_its_end(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require(state_adapter)
        queue = unique("handed-margin")
        jobs = _in_order(queue, 2)
        await state_adapter.create_jobs(tx=None, jobs=jobs)
        (running,) = await _acquire(state_adapter, queue, concurrency_limit=1)
        done, handed = await _hand_off(
            state_adapter, running.lease, concurrency_limit=1, lease_margin_ms=2 * LONG_LEASE_MS
        )
        assert handed is None, "a lease close to its end handed its place on"
        assert done.status is JobStatus.COMPLETED and done.output == OUTPUT
        assert await _status(state_adapter, jobs[1].id) == (JobStatus.PENDING, 0)

    @pytest.mark.asyncio
    async def test_no_hand_off_while_more_jobs_run_than_a_lowered_limit(
        self, state_adapter: StateAdapterAny
    ) -> None:
        # Three running, the limit lowered to two: the first to end is not replaced,
        # the next one is, so that the queue comes down to the new limit.
        _require(state_adapter)
        queue = unique("handed-lowered")
        jobs = _in_order(queue, 5)
        await state_adapter.create_jobs(tx=None, jobs=jobs)
        first = await _acquire(state_adapter, queue, concurrency_limit=3)
        assert ids(first) == [job.id for job in jobs[:3]]
        done, handed = await _hand_off(state_adapter, first[0].lease, concurrency_limit=2)
        assert handed is None, "a place was handed on over the limit"
        assert done.status is JobStatus.COMPLETED
        assert await _status(state_adapter, jobs[3].id) == (JobStatus.PENDING, 0)
        _, handed = await _hand_off(state_adapter, first[1].lease, concurrency_limit=2)
        assert handed is not None and handed.id == jobs[3].id
        assert sorted(await _running(state_adapter, queue)) == sorted([jobs[2].id, jobs[3].id])

    @pytest.mark.asyncio
    async def test_hand_off_passes_over_jobs_not_yet_due(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require(state_adapter)
        queue = unique("handed-later")
        now_job, later = new_job(queue, scheduled_at=PAST), new_job(queue, delay_ms=3_600_000)
        await state_adapter.create_jobs(tx=None, jobs=[now_job, later])
        (running,) = await _acquire(state_adapter, queue, concurrency_limit=1)
        assert running.id == now_job.id
        done, handed = await _hand_off(state_adapter, running.lease, concurrency_limit=1)
        assert handed is None, "a job scheduled later was handed the place"
        assert done.status is JobStatus.COMPLETED
        assert await _status(state_adapter, later.id) == (JobStatus.PENDING, 0)

    @pytest.mark.asyncio
    async def test_hand_off_per_key_follows_jobs_that_ran_were_cancelled_or_moved(
        self, state_adapter: StateAdapterAny
    ) -> None:
        # The key's next job is found among jobs that changed since they were
        # created: one running, one cancelled, one rescheduled behind the others.
        _require(state_adapter)
        queue = unique("handed-moved")
        jobs = _in_order(queue, 5, keys=["a"] * 5)
        a1, a2, a3, a4, a5 = jobs
        await state_adapter.create_jobs(tx=None, jobs=jobs)
        first = await _acquire(state_adapter, queue, concurrency_limit=2, per_key=True)
        assert ids(first) == [a1.id, a2.id]
        await state_adapter.cancel_chain(tx=None, chain_id=a3.chain_id)
        await state_adapter.reschedule_job(
            tx=None, lease=first[1].lease, error=None, scheduled_at=PAST + timedelta(hours=1)
        )
        _, handed = await _hand_off(
            state_adapter, first[0].lease, concurrency_limit=2, per_key=True
        )
        assert handed is not None, "a's place was not handed on"
        assert handed.id == a4.id, "not the key's next pending job"
        _, handed_again = await _hand_off(
            state_adapter, handed.lease, concurrency_limit=2, per_key=True
        )
        assert handed_again is not None and handed_again.id == a5.id
        _, last = await _hand_off(
            state_adapter, handed_again.lease, concurrency_limit=2, per_key=True
        )
        assert last is not None and last.id == a2.id, "the rescheduled job was not found"
        assert await _status(state_adapter, a3.id) == (JobStatus.CANCELLED, 0)

    @pytest.mark.asyncio
    async def test_hand_off_stays_in_the_completed_jobs_queue(
        self, state_adapter: StateAdapterAny
    ) -> None:
        # A job of another queue due between the two is not the next job.
        _require(state_adapter)
        queue, other = unique("handed"), unique("handed-other")
        first = new_job(queue, scheduled_at=PAST)
        between = new_job(other, scheduled_at=PAST + timedelta(seconds=1))
        second = new_job(queue, scheduled_at=PAST + timedelta(seconds=2))
        await state_adapter.create_jobs(tx=None, jobs=[first, between, second])
        (running,) = await _acquire(state_adapter, queue, concurrency_limit=1)
        _, handed = await _hand_off(state_adapter, running.lease, concurrency_limit=1)
        assert handed is not None and handed.id == second.id
        assert handed.queue == queue
        assert await _status(state_adapter, between.id) == (JobStatus.PENDING, 0)

    @pytest.mark.asyncio
    async def test_hand_off_with_a_lost_lease_raises_and_hands_nothing(
        self, state_adapter: StateAdapterAny
    ) -> None:
        # The limit leaves room, so that only the lost lease stands in the way.
        _require(state_adapter)
        queue = unique("handed-lost")
        jobs = _in_order(queue, 2)
        await state_adapter.create_jobs(tx=None, jobs=jobs)
        (running,) = await _acquire(state_adapter, queue, concurrency_limit=1)
        lease = running.lease
        for lost in (
            replace(lease, attempt=lease.attempt + 1),
            replace(lease, owner="worker-2"),
        ):
            with pytest.raises(LeaseLostError):
                await _hand_off(state_adapter, lost, concurrency_limit=3)
            assert await _status(state_adapter, jobs[1].id) == (JobStatus.PENDING, 0)
            assert await _status(state_adapter, running.id) == (JobStatus.RUNNING, 1)
        await state_adapter.complete_job(tx=None, lease=lease, output=OUTPUT)
        with pytest.raises(LeaseLostError):
            await _hand_off(state_adapter, lease, concurrency_limit=3)
        assert await _status(state_adapter, jobs[1].id) == (JobStatus.PENDING, 0)

    @pytest.mark.asyncio
    async def test_concurrent_hand_offs_hand_distinct_jobs_within_the_limit(
        self, state_adapter: StateAdapterAny, second_state_adapter: StateAdapterAny
    ) -> None:
        # Completions of one queue at once, from two adapters, with an acquirer
        # among them: each place goes to one job, and no more run than the limit.
        _require(state_adapter)
        queue = unique("handed-parallel")
        jobs = _in_order(queue, 12)
        await state_adapter.create_jobs(tx=None, jobs=jobs)
        running = await _acquire(state_adapter, queue, concurrency_limit=3)
        assert len(running) == 3
        adapters = [state_adapter, second_state_adapter]
        for _ in range(2):
            results, acquired = await asyncio.gather(
                asyncio.gather(
                    *(
                        _hand_off(adapters[n % 2], job.lease, concurrency_limit=3)
                        for n, job in enumerate(running)
                    )
                ),
                _acquire(second_state_adapter, queue, concurrency_limit=3, owner="worker-2"),
            )
            handed = [result[1] for result in results]
            started = [job.id for job in handed if job is not None] + ids(acquired)
            assert len(started) == len(set(started)), "a job was handed out twice"
            assert not set(started) & set(ids(running)), "a completed job was handed back"
            now_running = await _running(state_adapter, queue)
            assert len(now_running) <= 3, f"{len(now_running)} jobs running under a limit of 3"
            assert sorted(now_running) == sorted(started)
            running = [job for job in handed if job is not None] + acquired
        assert len(running) == 3, "places were lost on the way"

    @pytest.mark.asyncio
    async def test_a_chain_of_hand_offs_drains_the_backlog_in_acquisition_order(
        self, state_adapter: StateAdapterAny
    ) -> None:
        # Each handed job holds a valid lease, so its own completion hands its place
        # on in turn. Two jobs due at the same time go by priority.
        _require(state_adapter)
        queue = unique("handed-chain")
        prefix = unique("job")
        specs = [(0, 0), (1, 0), (1, 5), (2, 0), (3, 0)]  # (seconds after PAST, priority)
        jobs = [
            new_job(
                queue,
                scheduled_at=PAST + timedelta(seconds=at),
                priority=priority,
                job_id=f"{prefix}-{len(specs) - n}",
            )
            for n, (at, priority) in enumerate(specs)
        ]
        await state_adapter.create_jobs(tx=None, jobs=jobs)
        (current,) = await _acquire(state_adapter, queue, concurrency_limit=1)
        order = [current.id]
        for _ in jobs:
            _, handed = await _hand_off(state_adapter, current.lease, concurrency_limit=1)
            if handed is None:
                break
            order.append(handed.id)
            current = handed
        expected = [jobs[n].id for n in (0, 2, 1, 3, 4)]
        assert order == expected, "the backlog was not handed on in acquisition order"
        for job in jobs:
            assert await _status(state_adapter, job.id) == (JobStatus.COMPLETED, 1)
