"""Schedule slots: a slot's chain start is deduplicated on (schedule, slot time),
across concurrent starters, and is part of the caller's transaction.

Every case uses a schedule name of its own. Cases skip unless the adapter
declares ``schedules``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from queuert.conformance.support import PAST, StateAdapterAny, new_job, unique
from queuert.records import JobStatus


def _require(adapter: StateAdapterAny) -> None:
    if not adapter.capabilities.schedules:
        pytest.skip("adapter declares schedules=False")


class ScheduleCases:
    @pytest.mark.asyncio
    async def test_a_slot_starts_one_chain_however_many_start_it(
        self, state_adapter: StateAdapterAny, second_state_adapter: StateAdapterAny
    ) -> None:
        _require(state_adapter)
        schedule = unique("schedule")
        slot = PAST + timedelta(hours=1)
        jobs = [new_job(unique("scheduled")) for _ in range(6)]
        adapters = [state_adapter, second_state_adapter]
        started = await asyncio.gather(
            *(
                adapters[n % 2].start_scheduled_chain(
                    tx=None, schedule=schedule, slot_time=slot, job=job
                )
                for n, job in enumerate(jobs)
            )
        )
        assert started.count(True) == 1, started
        winner = jobs[started.index(True)]
        for job in jobs:
            found = await state_adapter.get_job(tx=None, job_id=job.id)
            if job is winner:
                assert found is not None and found.status is JobStatus.PENDING
            else:
                assert found is None, "a second start of the slot created a job"
        last = await state_adapter.get_last_schedule_slot(tx=None, schedule=schedule)
        assert last is not None
        assert (last.schedule, last.slot_time, last.chain_id) == (schedule, slot, winner.id)

    @pytest.mark.asyncio
    async def test_each_slot_of_a_schedule_starts_its_own_chain(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require(state_adapter)
        schedule = unique("schedule")
        early, late = PAST + timedelta(minutes=1), PAST + timedelta(minutes=2)
        first, second, other = new_job(), new_job(), new_job()
        assert await state_adapter.start_scheduled_chain(
            tx=None, schedule=schedule, slot_time=late, job=second
        )
        assert await state_adapter.start_scheduled_chain(
            tx=None, schedule=schedule, slot_time=early, job=first
        )
        assert await state_adapter.start_scheduled_chain(
            tx=None, schedule=unique("other"), slot_time=late, job=other
        ), "another schedule's slot at the same time is a slot of its own"
        last = await state_adapter.get_last_schedule_slot(tx=None, schedule=schedule)
        assert last is not None and last.slot_time == late and last.chain_id == second.id
        slot = await state_adapter.get_chain_schedule_slot(tx=None, chain_id=first.id)
        assert slot is not None and (slot.schedule, slot.slot_time) == (schedule, early)
        assert await state_adapter.get_chain_schedule_slot(tx=None, chain_id="nothing") is None
        assert await state_adapter.get_last_schedule_slot(tx=None, schedule="nothing") is None

    @pytest.mark.asyncio
    async def test_a_rolled_back_slot_start_leaves_the_slot_free(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require(state_adapter)
        schedule = unique("schedule")
        slot = PAST + timedelta(days=1)
        lost = new_job()
        with pytest.raises(RuntimeError):
            async with state_adapter.transaction() as tx:
                assert await state_adapter.start_scheduled_chain(
                    tx=tx, schedule=schedule, slot_time=slot, job=lost
                )
                raise RuntimeError("the application's transaction fails")
        assert await state_adapter.get_job(tx=None, job_id=lost.id) is None
        assert await state_adapter.get_last_schedule_slot(tx=None, schedule=schedule) is None
        assert await state_adapter.start_scheduled_chain(
            tx=None, schedule=schedule, slot_time=slot, job=new_job()
        )
