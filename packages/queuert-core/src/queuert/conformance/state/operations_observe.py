"""Observing from outside a worker: worker records, counts by queue and status, a
job's place in its queue, and listings newest first or within a creation window."""

from __future__ import annotations

from datetime import timedelta

import pytest

from queuert.conformance.support import (
    PAST,
    StateAdapterAny,
    assert_utc,
    create_one,
    eventually,
    ids,
    new_job,
    next_job,
    running_job,
)
from queuert.control_records import WorkerInfo
from queuert.records import ChainFilter, JobFilter, JobStatus


def _worker(worker_id: str, *queues: str, purges: bool = False) -> WorkerInfo:
    return WorkerInfo(
        id=worker_id, host="host-1", pid=42, queues=queues, concurrency=4, purges=purges
    )


class ObserveCases:
    @pytest.mark.asyncio
    async def test_workers_are_recorded_refreshed_and_removed(
        self, state_adapter: StateAdapterAny
    ) -> None:
        await state_adapter.record_worker(
            tx=None, worker=_worker("w-b", "q1", "q2", purges=True), forget_ms=60_000
        )
        await state_adapter.record_worker(tx=None, worker=_worker("w-a", "q3"), forget_ms=60_000)
        (a, b) = await state_adapter.list_workers(tx=None)
        assert (a.id, b.id) == ("w-a", "w-b")
        assert b.queues == ("q1", "q2") and b.concurrency == 4 and b.pid == 42
        assert b.host == "host-1" and b.purges and not a.purges
        assert_utc(b.started_at, b.last_seen_at)
        await state_adapter.record_worker(
            tx=None, worker=_worker("w-b", "q1", purges=True), forget_ms=60_000
        )
        refreshed = next(w for w in await state_adapter.list_workers(tx=None) if w.id == "w-b")
        assert refreshed.started_at == b.started_at
        assert refreshed.last_seen_at >= b.last_seen_at and refreshed.queues == ("q1",)
        await state_adapter.remove_worker(tx=None, worker_id="w-b")
        await state_adapter.remove_worker(tx=None, worker_id="w-unknown")
        assert [w.id for w in await state_adapter.list_workers(tx=None)] == ["w-a"]

    @pytest.mark.asyncio
    async def test_workers_not_seen_for_a_while_are_forgotten(
        self, state_adapter: StateAdapterAny
    ) -> None:
        await state_adapter.record_worker(tx=None, worker=_worker("w-old", "q"), forget_ms=60_000)

        async def forgotten() -> bool:
            await state_adapter.record_worker(tx=None, worker=_worker("w-new", "q"), forget_ms=1)
            return [w.id for w in await state_adapter.list_workers(tx=None)] == ["w-new"]

        await eventually(forgotten, what="the old worker's record to be dropped")

    @pytest.mark.asyncio
    async def test_counts_by_queue_and_status(self, state_adapter: StateAdapterAny) -> None:
        early = await create_one(state_adapter, new_job("count-a", scheduled_at=PAST))
        await create_one(state_adapter, new_job("count-a"))
        await running_job(state_adapter, new_job("count-b"))
        counts = await state_adapter.count_jobs(tx=None)
        assert_utc(counts.now)
        table = {(c.queue, c.status): c for c in counts.counts}
        assert table[("count-a", JobStatus.PENDING)].count == 2
        assert table[("count-a", JobStatus.PENDING)].oldest_scheduled_at == early.scheduled_at
        assert table[("count-b", JobStatus.RUNNING)].count == 1
        assert table[("count-b", JobStatus.RUNNING)].oldest_scheduled_at is None
        assert len(counts.counts) == 2

    @pytest.mark.asyncio
    async def test_queue_position_counts_due_jobs_taken_first(
        self, state_adapter: StateAdapterAny
    ) -> None:
        first = await create_one(state_adapter, new_job("pos", scheduled_at=PAST))
        second = await create_one(
            state_adapter, new_job("pos", scheduled_at=PAST + timedelta(seconds=1))
        )
        await create_one(state_adapter, new_job("pos-other", scheduled_at=PAST))
        later = await create_one(state_adapter, new_job("pos", delay_ms=3_600_000))
        head = await state_adapter.queue_position(tx=None, job_id=first.id)
        behind = await state_adapter.queue_position(tx=None, job_id=second.id)
        waiting = await state_adapter.queue_position(tx=None, job_id=later.id)
        assert head is not None and head.ahead == 0 and head.job == first
        assert behind is not None and behind.ahead == 1
        assert waiting is not None and waiting.ahead == 2 and waiting.now < later.scheduled_at
        assert await state_adapter.queue_position(tx=None, job_id=new_job().id) is None

    @pytest.mark.asyncio
    async def test_list_newest_first_pages_backwards(self, state_adapter: StateAdapterAny) -> None:
        jobs = [await create_one(state_adapter) for _ in range(5)]
        newest = JobFilter(newest_first=True)
        page = await state_adapter.list_jobs(tx=None, filter=newest, after=None, limit=3)
        assert ids(page.items) == [j.id for j in reversed(jobs)][:3]
        rest = await state_adapter.list_jobs(
            tx=None, filter=newest, after=page.next_cursor, limit=3
        )
        assert ids(rest.items) == [jobs[1].id, jobs[0].id] and rest.next_cursor is None
        chains = await state_adapter.list_chains(
            tx=None, filter=ChainFilter(newest_first=True), after=None, limit=2
        )
        assert ids(chains.items) == [jobs[4].id, jobs[3].id]

    @pytest.mark.asyncio
    async def test_list_within_a_creation_window(self, state_adapter: StateAdapterAny) -> None:
        jobs = [await create_one(state_adapter) for _ in range(3)]
        mid = jobs[1].created_at
        after = await state_adapter.list_jobs(
            tx=None,
            filter=JobFilter(created_after=mid - timedelta(microseconds=1)),
            after=None,
            limit=10,
        )
        assert jobs[0].id not in ids(after.items) or jobs[0].created_at >= mid
        assert jobs[1].id in ids(after.items) and jobs[2].id in ids(after.items)
        before = await state_adapter.list_jobs(
            tx=None, filter=JobFilter(created_before=mid), after=None, limit=10
        )
        assert jobs[1].id not in ids(before.items) and jobs[2].id not in ids(before.items)
        far = jobs[2].created_at + timedelta(hours=1)
        none = await state_adapter.list_chains(
            tx=None, filter=ChainFilter(created_after=far), after=None, limit=10
        )
        assert none.items == []
        all_chains = await state_adapter.list_chains(
            tx=None, filter=ChainFilter(created_before=far), after=None, limit=10
        )
        assert ids(all_chains.items) == ids(jobs)

    @pytest.mark.asyncio
    async def test_chains_are_filtered_by_their_current_queue(
        self, state_adapter: StateAdapterAny
    ) -> None:
        only_a = await create_one(state_adapter, new_job("observe-a"))
        only_b = await create_one(state_adapter, new_job("observe-b"))
        moved = await create_one(state_adapter, new_job("observe-a"))
        # Continued into queue b: the chain's current queue is its last job's.
        await state_adapter.settle_job(
            tx=None, job_id=moved.id, output=None, next_job=next_job(moved, "observe-b")
        )
        in_b = await state_adapter.list_chains(
            tx=None, filter=ChainFilter(queues=("observe-b",)), after=None, limit=10
        )
        assert ids(in_b.items) == [only_b.id, moved.id]
        assert {c.last_queue for c in in_b.items} == {"observe-b"}
        in_a = await state_adapter.list_chains(
            tx=None, filter=ChainFilter(queues=("observe-a",)), after=None, limit=10
        )
        assert ids(in_a.items) == [only_a.id]
        newest = await state_adapter.list_chains(
            tx=None,
            filter=ChainFilter(queues=("observe-b",), newest_first=True),
            after=None,
            limit=10,
        )
        assert ids(newest.items) == [moved.id, only_b.id]
