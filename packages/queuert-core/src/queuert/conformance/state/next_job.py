"""How long until the next job of some queues is due."""

from __future__ import annotations

import pytest

from queuert.conformance.support import PAST, StateAdapterAny, create_one, new_job, running_job


class NextJobCases:
    @pytest.mark.asyncio
    async def test_no_pending_job_means_none(self, state_adapter: StateAdapterAny) -> None:
        assert await state_adapter.time_until_next_job(tx=None, queues=["conformance"]) is None

    @pytest.mark.asyncio
    async def test_due_job_means_zero(self, state_adapter: StateAdapterAny) -> None:
        await create_one(state_adapter, new_job(scheduled_at=PAST))
        assert await state_adapter.time_until_next_job(tx=None, queues=["conformance"]) == 0.0

    @pytest.mark.asyncio
    async def test_future_job_means_seconds_until_due(self, state_adapter: StateAdapterAny) -> None:
        await create_one(state_adapter, new_job(delay_ms=60_000))
        wait = await state_adapter.time_until_next_job(tx=None, queues=["conformance"])
        assert wait is not None
        assert 50.0 < wait <= 60.0

    @pytest.mark.asyncio
    async def test_earliest_job_of_the_given_queues_counts(
        self, state_adapter: StateAdapterAny
    ) -> None:
        await state_adapter.create_jobs(
            tx=None,
            jobs=[
                new_job("a", delay_ms=600_000),
                new_job("b", delay_ms=60_000),
                new_job("c", scheduled_at=PAST),
            ],
        )
        wait = await state_adapter.time_until_next_job(tx=None, queues=["a", "b"])
        assert wait is not None
        assert 50.0 < wait <= 60.0

    @pytest.mark.asyncio
    async def test_running_and_other_queues_do_not_count(
        self, state_adapter: StateAdapterAny
    ) -> None:
        await running_job(state_adapter)
        await create_one(state_adapter, new_job("elsewhere", scheduled_at=PAST))
        assert await state_adapter.time_until_next_job(tx=None, queues=["conformance"]) is None
