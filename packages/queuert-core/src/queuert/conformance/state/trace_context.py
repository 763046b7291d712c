"""The trace context a new job carries: stored unchanged and read back by every
read, for chain starts (batches too) and continuations."""

from __future__ import annotations

from dataclasses import replace

import pytest

from queuert.conformance.support import (
    StateAdapterAny,
    acquire_one,
    create_one,
    new_job,
    next_job,
    running_job,
)
from queuert.records import JobFilter

CONTEXT = '{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}'


class TraceContextCases:
    @pytest.mark.asyncio
    async def test_trace_context_reads_back_from_a_chain_start(
        self, state_adapter: StateAdapterAny
    ) -> None:
        job = replace(new_job(), trace_context=CONTEXT)
        created = await create_one(state_adapter, job)
        assert created.trace_context == CONTEXT
        stored = await state_adapter.get_job(tx=None, job_id=job.id)
        assert stored is not None and stored.trace_context == CONTEXT
        acquired = await acquire_one(state_adapter, job.queue)
        assert acquired.trace_context == CONTEXT

    @pytest.mark.asyncio
    async def test_trace_context_reads_back_from_a_batch_and_a_listing(
        self, state_adapter: StateAdapterAny
    ) -> None:
        traced = [replace(new_job("tc"), trace_context=f'{{"n":"{i}"}}') for i in range(3)]
        jobs = [*traced, new_job("tc")]
        await state_adapter.create_jobs(tx=None, jobs=jobs)
        page = await state_adapter.list_jobs(
            tx=None, filter=JobFilter(queues=("tc",)), after=None, limit=10
        )
        by_id = {record.id: record.trace_context for record in page.items}
        assert by_id == {job.id: job.trace_context for job in jobs}
        assert by_id[jobs[-1].id] is None

    @pytest.mark.asyncio
    async def test_trace_context_reads_back_from_a_continuation(
        self, state_adapter: StateAdapterAny
    ) -> None:
        first = await running_job(state_adapter)
        following = replace(next_job(first), trace_context=CONTEXT)
        await state_adapter.continue_job(tx=None, lease=first.lease, next_job=following)
        stored = await state_adapter.get_job(tx=None, job_id=following.id)
        assert stored is not None and stored.trace_context == CONTEXT

    @pytest.mark.asyncio
    async def test_trace_context_reads_back_from_a_locked_continuation(
        self, state_adapter: StateAdapterAny
    ) -> None:
        first = await running_job(state_adapter)
        following = replace(next_job(first), trace_context=CONTEXT)
        async with state_adapter.leased_transaction(lease=first.lease, lock=True) as tx:
            await state_adapter.continue_locked_job(tx=tx, lease=first.lease, next_job=following)
        stored = await state_adapter.get_job(tx=None, job_id=following.id)
        assert stored is not None and stored.trace_context == CONTEXT
