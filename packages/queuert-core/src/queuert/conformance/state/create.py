"""Creating jobs: batch order, stored fields, scheduling, uniqueness."""

from __future__ import annotations

from datetime import timedelta

import pytest

from queuert.conformance.support import (
    PAST,
    StateAdapterAny,
    assert_near,
    assert_utc,
    create_one,
    ids,
    new_job,
    slack,
    tolerance,
)
from queuert.errors import QueuertError
from queuert.records import JobFilter, JobStatus, NewJob


class CreateJobsCases:
    @pytest.mark.asyncio
    async def test_create_returns_jobs_in_batch_order(self, state_adapter: StateAdapterAny) -> None:
        jobs = [new_job("c"), new_job("a"), new_job("b")]
        jobs.reverse()
        created = await state_adapter.create_jobs(tx=None, jobs=jobs)
        assert ids(created) == [job.id for job in jobs]
        assert [job.queue for job in created] == ["b", "a", "c"]
        for record in created:
            assert await state_adapter.get_job(tx=None, job_id=record.id) == record

    @pytest.mark.asyncio
    async def test_created_job_has_initial_fields(self, state_adapter: StateAdapterAny) -> None:
        job = new_job("images:resize", input='{"id": 7}', max_attempts=5, priority=3)
        created = await create_one(state_adapter, job)
        assert created.id == job.id
        assert created.chain_id == job.id
        assert created.chain_name == "images"
        assert created.queue == "images:resize"
        assert created.position == 0
        assert created.status is JobStatus.PENDING
        assert created.input == '{"id": 7}'
        assert created.attempt == 0
        assert created.max_attempts == 5
        assert created.priority == 3
        assert created.leased_by is None
        assert created.leased_until is None
        assert created.output is None
        assert created.error is None
        assert created.next_job_id is None
        assert created.completed_at is None
        assert not created.continued
        assert_utc(created.created_at, created.updated_at, created.scheduled_at)
        assert_near(created.updated_at, created.created_at, slack(state_adapter))
        assert_near(created.scheduled_at, created.created_at, slack(state_adapter))

    @pytest.mark.asyncio
    async def test_input_text_is_stored_unchanged(self, state_adapter: StateAdapterAny) -> None:
        inputs = [
            '{"z": 1,  "a": [1, 2.50, 1e3], "nested": {"b": null}}',
            '"just a string with \\"quotes\\" and \\u00e9"',
            '{"text": "ünïcödé ✓", "empty": {}}',
            "[]",
            "null",
        ]
        created = await state_adapter.create_jobs(
            tx=None, jobs=[new_job(input=text) for text in inputs]
        )
        assert [record.input for record in created] == inputs
        for record, text in zip(created, inputs, strict=True):
            stored = await state_adapter.get_job(tx=None, job_id=record.id)
            assert stored is not None and stored.input == text

    @pytest.mark.asyncio
    async def test_delay_schedules_the_job_later(self, state_adapter: StateAdapterAny) -> None:
        created = await create_one(state_adapter, new_job(delay_ms=60_000))
        assert_near(
            created.scheduled_at,
            created.created_at + timedelta(seconds=60),
            slack(state_adapter),
        )

    @pytest.mark.asyncio
    async def test_scheduled_at_wins_over_delay(self, state_adapter: StateAdapterAny) -> None:
        created = await create_one(state_adapter, new_job(scheduled_at=PAST, delay_ms=60_000))
        assert_near(created.scheduled_at, PAST, tolerance(state_adapter))
        assert_utc(created.scheduled_at)

    @pytest.mark.asyncio
    async def test_empty_batch_creates_nothing(self, state_adapter: StateAdapterAny) -> None:
        assert await state_adapter.create_jobs(tx=None, jobs=[]) == []
        page = await state_adapter.list_jobs(tx=None, filter=JobFilter(), after=None, limit=10)
        assert page.items == []

    @pytest.mark.asyncio
    async def test_first_job_starts_its_chain(self, state_adapter: StateAdapterAny) -> None:
        created = await create_one(state_adapter, new_job("reports", input='{"month": 3}'))
        chain = await state_adapter.get_chain(tx=None, chain_id=created.id)
        assert chain is not None
        assert chain.id == created.id
        assert chain.chain_name == "reports"
        assert chain.status is JobStatus.PENDING
        assert chain.input == '{"month": 3}'
        assert chain.output is None
        assert chain.error is None
        assert chain.last_job_id == created.id
        assert chain.last_queue == "reports"
        assert chain.created_at == created.created_at
        assert chain.completed_at is None
        assert_utc(chain.created_at, chain.updated_at)

    @pytest.mark.asyncio
    async def test_batch_of_several_chains_creates_each(
        self, state_adapter: StateAdapterAny
    ) -> None:
        created = await state_adapter.create_jobs(
            tx=None, jobs=[new_job("a"), new_job("a"), new_job("b")]
        )
        for record in created:
            chain = await state_adapter.get_chain(tx=None, chain_id=record.id)
            assert chain is not None and chain.last_job_id == record.id

    @pytest.mark.asyncio
    @pytest.mark.parametrize("batch", ["alike", "mixed"])
    async def test_batch_stores_each_jobs_own_fields(
        self, state_adapter: StateAdapterAny, batch: str
    ) -> None:
        # Alike: what one enqueue_job_chains call writes (only id and input differ).
        if batch == "alike":
            jobs = [
                new_job(
                    "img:resize", input=f'{{"n": {n}}}', max_attempts=5, priority=3, delay_ms=60_000
                )
                for n in range(3)
            ]
        else:
            jobs = [
                new_job(
                    "img:resize", input='{"n": 0}', max_attempts=5, priority=3, delay_ms=60_000
                ),
                new_job("img:crop", input='{"n": 1}', max_attempts=2, priority=1),
                new_job("img:resize", input='{"n": 2}', scheduled_at=PAST, chain_name="other"),
            ]
        created = await state_adapter.create_jobs(tx=None, jobs=jobs)
        for job, record in zip(jobs, created, strict=True):
            stored = await state_adapter.get_job(tx=None, job_id=job.id)
            assert stored is not None and stored == record
            assert (stored.chain_id, stored.position) == (job.id, 0)
            assert (stored.chain_name, stored.queue, stored.input) == (
                job.chain_name,
                job.queue,
                job.input,
            )
            assert (stored.max_attempts, stored.priority) == (job.max_attempts, job.priority)
            if job.scheduled_at is not None:
                assert_near(stored.scheduled_at, job.scheduled_at, tolerance(state_adapter))
            else:
                assert_near(
                    stored.scheduled_at,
                    stored.created_at + timedelta(milliseconds=job.delay_ms),
                    slack(state_adapter),
                )

    @pytest.mark.asyncio
    async def test_duplicate_job_id_is_rejected(self, state_adapter: StateAdapterAny) -> None:
        first = await create_one(state_adapter, new_job("a", input='{"n": 1}'))
        duplicate = new_job("b", input='{"n": 2}', job_id=first.id)
        with pytest.raises(QueuertError):
            await state_adapter.create_jobs(tx=None, jobs=[duplicate])
        assert await state_adapter.get_job(tx=None, job_id=first.id) == first

    @pytest.mark.asyncio
    async def test_batch_with_taken_chain_position_writes_nothing(
        self, state_adapter: StateAdapterAny
    ) -> None:
        first = new_job("a")
        clash = NewJob(
            id=new_job().id,
            chain_id=first.chain_id,
            chain_name=first.chain_name,
            queue="a",
            position=0,
            input="{}",
            max_attempts=1,
        )
        with pytest.raises(QueuertError):
            await state_adapter.create_jobs(tx=None, jobs=[first, clash])
        assert await state_adapter.get_job(tx=None, job_id=first.id) is None
        assert await state_adapter.get_job(tx=None, job_id=clash.id) is None
        assert await state_adapter.get_chain(tx=None, chain_id=first.chain_id) is None
