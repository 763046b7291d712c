"""What a worker learns of blockers without reading them: whether a job was created
with blockers, and which queues a completion unblocked; and deduplicated starts
that wait on blockers (capabilities ``blockers`` and ``deduplication``)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from queuert.conformance.support import (
    LONG_LEASE_MS,
    OWNER,
    StateAdapterAny,
    acquire_one,
    new_job,
    next_job,
    running_job,
    unique,
)
from queuert.errors import JobNotFoundError
from queuert.records import ChainFilter, DedupKey, DedupScope, JobRecord, JobStatus

BLOCKER = "conformance-fan-in-blocker"


def _require(adapter: StateAdapterAny, *, dedup: bool = False) -> None:
    if not adapter.capabilities.blockers:
        pytest.skip("the adapter does not declare the `blockers` capability")
    if dedup and not adapter.capabilities.deduplication:
        pytest.skip("the adapter does not declare the `deduplication` capability")


async def _blocker(adapter: StateAdapterAny) -> JobRecord:
    """A running job of a new blocker chain (the chain's last job)."""
    return await running_job(adapter, new_job(BLOCKER))


async def _waiter(adapter: StateAdapterAny, queue: str, *blockers: JobRecord) -> JobRecord:
    (created,) = await adapter.create_blocked_jobs(
        tx=None, jobs=[new_job(queue)], blocker_chain_ids=[b.chain_id for b in blockers]
    )
    return created


class FanInCases:
    @pytest.mark.asyncio
    async def test_a_job_created_with_blockers_says_so_when_acquired(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require(state_adapter)
        queue = unique("conformance-flag")
        blocker = await _blocker(state_adapter)
        waiter = await _waiter(state_adapter, queue, blocker)
        await state_adapter.create_jobs(tx=None, jobs=[plain := new_job(queue)])
        await state_adapter.complete_job(tx=None, lease=blocker.lease, output="1")
        acquired = await state_adapter.acquire_jobs(
            tx=None, queues=[queue], limit=10, owner=OWNER, lease_ms=LONG_LEASE_MS
        )
        assert {job.id: job.has_blockers for job in acquired} == {
            waiter.id: True,
            plain.id: False,
        }
        read = await state_adapter.get_job(tx=None, job_id=waiter.id)
        assert read is not None and read.has_blockers

    @pytest.mark.asyncio
    async def test_a_completion_names_the_queues_it_unblocks(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require(state_adapter)
        queue = unique("conformance-woken")
        first = await _blocker(state_adapter)
        second = await _blocker(state_adapter)
        await _waiter(state_adapter, queue, first, second)
        done = await state_adapter.complete_job(tx=None, lease=first.lease, output="1")
        # The job still waits on the second chain: naming its queue is allowed.
        assert set(done.unblocked_queues) <= {queue}
        last = await state_adapter.complete_job(tx=None, lease=second.lease, output="2")
        assert last.unblocked_queues == (queue,)
        alone = await _blocker(state_adapter)
        lone = await state_adapter.complete_job(tx=None, lease=alone.lease, output="3")
        assert lone.unblocked_queues == ()

    @pytest.mark.asyncio
    async def test_completing_a_blocker_from_outside_names_the_queues_it_unblocks(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require(state_adapter)
        queue = unique("conformance-settled")
        blocker = await running_job(state_adapter, new_job(BLOCKER))
        waiter = await _waiter(state_adapter, queue, blocker)
        settled = await state_adapter.settle_job(
            tx=None, job_id=blocker.id, output='"by hand"', next_job=None
        )
        assert settled.job.unblocked_queues == (queue,)
        current = await state_adapter.get_job(tx=None, job_id=waiter.id)
        assert current is not None and current.status is JobStatus.PENDING

    @pytest.mark.asyncio
    async def test_continuing_a_blocker_from_outside_leaves_its_dependents_waiting(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require(state_adapter)
        queue = unique("conformance-continued")
        blocker = await running_job(state_adapter, new_job(BLOCKER))
        waiter = await _waiter(state_adapter, queue, blocker)
        step = next_job(blocker, f"{BLOCKER}:step")
        settled = await state_adapter.settle_job(
            tx=None, job_id=blocker.id, output=None, next_job=step
        )
        assert settled.job.unblocked_queues == ()
        current = await state_adapter.get_job(tx=None, job_id=waiter.id)
        assert current is not None and current.status is JobStatus.BLOCKED
        last = await acquire_one(state_adapter, step.queue)
        done = await state_adapter.complete_job(tx=None, lease=last.lease, output="1")
        assert done.unblocked_queues == (queue,)

    @pytest.mark.asyncio
    async def test_a_deduplicated_start_waits_on_its_blockers_once(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require(state_adapter, dedup=True)
        queue = unique("conformance-dedup-wait")
        blocker = await _blocker(state_adapter)
        key = DedupKey(unique("key"), DedupScope.INCOMPLETE, None)
        first, again = new_job(queue), new_job(queue)
        holders = await state_adapter.create_deduplicated_jobs(
            tx=None, jobs=[first], dedup=[key], blocker_chain_ids=[blocker.chain_id]
        )
        assert holders == [first.chain_id]
        created = await state_adapter.get_job(tx=None, job_id=first.id)
        assert created is not None and created.status is JobStatus.BLOCKED
        assert created.has_blockers
        holders = await state_adapter.create_deduplicated_jobs(
            tx=None, jobs=[again], dedup=[key], blocker_chain_ids=[blocker.chain_id]
        )
        assert holders == [first.chain_id]
        assert await state_adapter.get_job(tx=None, job_id=again.id) is None
        assert await state_adapter.list_dependent_chains(tx=None, chain_ids=[blocker.chain_id]) == [
            first.chain_id
        ]
        await state_adapter.complete_job(tx=None, lease=blocker.lease, output='"out"')
        running = await acquire_one(state_adapter, queue)
        assert running.id == first.id
        blockers = await state_adapter.get_blockers(tx=None, job_id=first.id)
        assert [(b.chain_id, b.output) for b in blockers] == [(blocker.chain_id, '"out"')]

    @pytest.mark.asyncio
    async def test_a_deduplicated_start_with_a_missing_blocker_writes_nothing(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require(state_adapter, dedup=True)
        job = new_job(unique("conformance-dedup-missing"))
        key = DedupKey(unique("key"), DedupScope.INCOMPLETE, None)
        with pytest.raises(JobNotFoundError):
            await state_adapter.create_deduplicated_jobs(
                tx=None, jobs=[job], dedup=[key], blocker_chain_ids=[new_job().chain_id]
            )
        assert await state_adapter.get_job(tx=None, job_id=job.id) is None
        retried = await state_adapter.create_deduplicated_jobs(tx=None, jobs=[job], dedup=[key])
        assert retried == [job.chain_id]

    @pytest.mark.asyncio
    async def test_chains_of_a_dedup_key_list_newest_first_within_a_window(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require(state_adapter, dedup=True)
        key = unique("listed")
        chains = []
        for _ in range(3):
            job = new_job(unique("conformance-listed"))
            request = DedupKey(key, DedupScope.INCOMPLETE, None)
            (holder,) = await state_adapter.create_deduplicated_jobs(
                tx=None, jobs=[job], dedup=[request]
            )
            chains.append(await state_adapter.get_chain(tx=None, chain_id=holder))
        await state_adapter.create_jobs(tx=None, jobs=[new_job(unique("conformance-listed"))])
        started = [c for c in chains if c is not None]
        newest = await state_adapter.list_chains(
            tx=None, filter=ChainFilter(dedup_key=key, newest_first=True), after=None, limit=10
        )
        assert [c.id for c in newest.items] == [c.id for c in reversed(started)]
        after = started[0].created_at - timedelta(milliseconds=1)
        before = started[-1].created_at
        window = ChainFilter(
            dedup_key=key, created_after=after, created_before=before, newest_first=True
        )
        page = await state_adapter.list_chains(tx=None, filter=window, after=None, limit=10)
        inside = [c.id for c in reversed(started) if after < c.created_at < before]
        assert [c.id for c in page.items] == inside
