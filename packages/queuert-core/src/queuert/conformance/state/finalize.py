"""Ending a job: complete, continue (chain linkage) and fail."""

from __future__ import annotations

from datetime import timedelta

import pytest

from queuert.conformance.support import (
    LONG_LEASE_MS,
    OWNER,
    StateAdapterAny,
    acquire_one,
    assert_near,
    assert_utc,
    create_one,
    ids,
    new_job,
    next_job,
    running_job,
    slack,
)
from queuert.errors import LeaseLostError, QueuertError
from queuert.records import JobError, JobFilter, JobStatus


class FinalizeCases:
    @pytest.mark.asyncio
    async def test_complete_job_records_output(self, state_adapter: StateAdapterAny) -> None:
        job = await running_job(state_adapter)
        done = await state_adapter.complete_job(tx=None, lease=job.lease, output='{"size": 12}')
        assert done.id == job.id
        assert done.status is JobStatus.COMPLETED
        assert done.output == '{"size": 12}'
        assert done.attempt == job.attempt
        assert done.leased_by is None
        assert done.leased_until is None
        assert done.next_job_id is None
        assert not done.continued
        assert done.error is None
        assert done.completed_at is not None
        assert done.completed_at >= job.updated_at
        assert_near(done.updated_at, done.completed_at, slack(state_adapter))
        assert_utc(done.completed_at, done.updated_at)
        assert await state_adapter.get_job(tx=None, job_id=job.id) == done

    @pytest.mark.asyncio
    async def test_completion_keeps_the_error_of_an_earlier_attempt(
        self, state_adapter: StateAdapterAny
    ) -> None:
        job = await running_job(state_adapter)
        error = JobError(type="TimeoutError", message="first try timed out")
        await state_adapter.reschedule_job(tx=None, lease=job.lease, error=error)
        retried = await acquire_one(state_adapter, job.queue)
        assert retried.attempt == 2
        done = await state_adapter.complete_job(tx=None, lease=retried.lease, output="1")
        assert done.error == error
        nxt_job = await running_job(state_adapter)
        await state_adapter.reschedule_job(tx=None, lease=nxt_job.lease, error=error)
        again = await acquire_one(state_adapter, nxt_job.queue)
        continued = await state_adapter.continue_job(
            tx=None, lease=again.lease, next_job=next_job(again, "q:next")
        )
        assert continued.error is None
        previous = await state_adapter.get_job(tx=None, job_id=again.id)
        assert previous is not None and previous.error == error

    @pytest.mark.asyncio
    async def test_completing_the_last_job_completes_the_chain(
        self, state_adapter: StateAdapterAny
    ) -> None:
        job = await running_job(state_adapter, new_job(input='{"in": 1}'))
        done = await state_adapter.complete_job(tx=None, lease=job.lease, output='{"out": 2}')
        chain = await state_adapter.get_chain(tx=None, chain_id=job.chain_id)
        assert chain is not None
        assert chain.status is JobStatus.COMPLETED
        assert chain.output == '{"out": 2}'
        assert chain.input == '{"in": 1}'
        assert chain.completed_at == done.completed_at
        assert chain.error is None

    @pytest.mark.asyncio
    async def test_completed_job_cannot_complete_again(
        self, state_adapter: StateAdapterAny
    ) -> None:
        job = await running_job(state_adapter)
        done = await state_adapter.complete_job(tx=None, lease=job.lease, output='"first"')
        with pytest.raises(LeaseLostError):
            await state_adapter.complete_job(tx=None, lease=job.lease, output='"second"')
        assert await state_adapter.get_job(tx=None, job_id=job.id) == done

    @pytest.mark.asyncio
    async def test_fail_job_records_error(self, state_adapter: StateAdapterAny) -> None:
        job = await running_job(state_adapter)
        error = JobError(type="ValueError", message="bad pixel", traceback="Traceback ...\n  x")
        failed = await state_adapter.fail_job(tx=None, lease=job.lease, error=error)
        assert failed.status is JobStatus.FAILED
        assert failed.error == error
        assert failed.output is None
        assert failed.leased_by is None
        assert failed.leased_until is None
        assert failed.completed_at is not None
        assert failed.attempt == job.attempt
        assert await state_adapter.get_job(tx=None, job_id=job.id) == failed

    @pytest.mark.asyncio
    async def test_failing_the_last_job_fails_the_chain(
        self, state_adapter: StateAdapterAny
    ) -> None:
        job = await running_job(state_adapter)
        error = JobError(type="NonRetryable", message="gave up")
        failed = await state_adapter.fail_job(tx=None, lease=job.lease, error=error)
        chain = await state_adapter.get_chain(tx=None, chain_id=job.chain_id)
        assert chain is not None
        assert chain.status is JobStatus.FAILED
        assert chain.error == error
        assert chain.output is None
        assert chain.completed_at == failed.completed_at

    @pytest.mark.asyncio
    async def test_continue_job_links_the_next_job(self, state_adapter: StateAdapterAny) -> None:
        job = await running_job(state_adapter, new_job("images"))
        following = next_job(job, "images:distribute", input='{"row": 5}')
        created = await state_adapter.continue_job(tx=None, lease=job.lease, next_job=following)
        assert created.id == following.id
        assert created.chain_id == job.chain_id
        assert created.chain_name == "images"
        assert created.queue == "images:distribute"
        assert created.position == 1
        assert created.input == '{"row": 5}'
        assert created.status is JobStatus.PENDING
        assert created.attempt == 0
        assert created.leased_by is None
        assert await state_adapter.get_job(tx=None, job_id=created.id) == created

        previous = await state_adapter.get_job(tx=None, job_id=job.id)
        assert previous is not None
        assert previous.status is JobStatus.COMPLETED
        assert previous.next_job_id == created.id
        assert previous.continued
        assert previous.output is None
        assert previous.leased_by is None
        assert previous.leased_until is None
        assert previous.completed_at is not None

    @pytest.mark.asyncio
    async def test_continued_chain_follows_its_last_job(
        self, state_adapter: StateAdapterAny
    ) -> None:
        first = await running_job(state_adapter, new_job("images", input='{"image": 1}'))
        second = await state_adapter.continue_job(
            tx=None, lease=first.lease, next_job=next_job(first, "images:distribute")
        )
        chain = await state_adapter.get_chain(tx=None, chain_id=first.chain_id)
        assert chain is not None
        assert chain.id == first.id
        assert chain.status is JobStatus.PENDING
        assert chain.last_job_id == second.id
        assert chain.last_queue == "images:distribute"
        assert chain.input == '{"image": 1}'
        assert chain.created_at == first.created_at
        assert chain.output is None
        assert chain.completed_at is None

        running = await acquire_one(state_adapter, "images:distribute")
        chain = await state_adapter.get_chain(tx=None, chain_id=first.chain_id)
        assert chain is not None and chain.status is JobStatus.RUNNING
        assert running.id == second.id

    @pytest.mark.asyncio
    async def test_chain_completes_with_its_last_job_output(
        self, state_adapter: StateAdapterAny
    ) -> None:
        job = await running_job(state_adapter, new_job("etl"))
        for step in ("etl:transform", "etl:load"):
            following = await state_adapter.continue_job(
                tx=None, lease=job.lease, next_job=next_job(job, step)
            )
            job = await acquire_one(state_adapter, following.queue)
        await state_adapter.complete_job(tx=None, lease=job.lease, output='{"rows": 3}')

        chain = await state_adapter.get_chain(tx=None, chain_id=job.chain_id)
        assert chain is not None
        assert chain.status is JobStatus.COMPLETED
        assert chain.output == '{"rows": 3}'
        assert chain.last_job_id == job.id
        assert chain.last_queue == "etl:load"
        page = await state_adapter.list_jobs(
            tx=None, filter=JobFilter(chain_id=job.chain_id), after=None, limit=10
        )
        by_position = sorted(page.items, key=lambda record: record.position)
        assert [record.position for record in by_position] == [0, 1, 2]
        assert [record.queue for record in by_position] == ["etl", "etl:transform", "etl:load"]
        assert [record.next_job_id for record in by_position] == [
            by_position[1].id,
            by_position[2].id,
            None,
        ]

    @pytest.mark.asyncio
    async def test_second_continuation_of_a_job_fails(self, state_adapter: StateAdapterAny) -> None:
        job = await running_job(state_adapter)
        created = await state_adapter.continue_job(
            tx=None, lease=job.lease, next_job=next_job(job, "conformance:a")
        )
        with pytest.raises(QueuertError):
            await state_adapter.continue_job(
                tx=None, lease=job.lease, next_job=next_job(job, "conformance:b")
            )
        page = await state_adapter.list_jobs(
            tx=None, filter=JobFilter(chain_id=job.chain_id), after=None, limit=10
        )
        assert sorted(ids(page.items)) == sorted([job.id, created.id])
        chain = await state_adapter.get_chain(tx=None, chain_id=job.chain_id)
        assert chain is not None and chain.last_job_id == created.id

    @pytest.mark.asyncio
    async def test_continuation_to_a_taken_position_fails_and_changes_nothing(
        self, state_adapter: StateAdapterAny
    ) -> None:
        job = await running_job(state_adapter)
        taken = next_job(job, "conformance:taken")
        await state_adapter.create_jobs(tx=None, jobs=[taken])
        before = await state_adapter.get_job(tx=None, job_id=job.id)
        clash = next_job(job, "conformance:clash")
        with pytest.raises(QueuertError):
            await state_adapter.continue_job(tx=None, lease=job.lease, next_job=clash)
        assert await state_adapter.get_job(tx=None, job_id=job.id) == before
        assert await state_adapter.get_job(tx=None, job_id=clash.id) is None

    @pytest.mark.asyncio
    async def test_delayed_continuation_waits(self, state_adapter: StateAdapterAny) -> None:
        job = await running_job(state_adapter)
        created = await state_adapter.continue_job(
            tx=None, lease=job.lease, next_job=next_job(job, "conformance:later", delay_ms=60_000)
        )
        assert_near(
            created.scheduled_at,
            created.created_at + timedelta(seconds=60),
            slack(state_adapter),
        )
        acquired = await state_adapter.acquire_jobs(
            tx=None, queues=["conformance:later"], limit=1, owner=OWNER, lease_ms=LONG_LEASE_MS
        )
        assert acquired == []

    @pytest.mark.asyncio
    async def test_finished_jobs_are_not_acquired(self, state_adapter: StateAdapterAny) -> None:
        completed = await running_job(state_adapter)
        await state_adapter.complete_job(tx=None, lease=completed.lease, output="1")
        failed = await running_job(state_adapter)
        await state_adapter.fail_job(tx=None, lease=failed.lease, error=JobError("E", "e"))
        await create_one(state_adapter, new_job("other"))
        acquired = await state_adapter.acquire_jobs(
            tx=None, queues=["conformance"], limit=5, owner=OWNER, lease_ms=LONG_LEASE_MS
        )
        assert acquired == []
