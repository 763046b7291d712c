"""Cancelling chains, and chain records of unknown ids."""

from __future__ import annotations

import pytest

from queuert.conformance.support import (
    LONG_LEASE_MS,
    OWNER,
    QUEUE,
    StateAdapterAny,
    create_one,
    new_job,
    next_job,
    running_job,
)
from queuert.records import JobStatus


class ChainCases:
    @pytest.mark.asyncio
    async def test_cancel_pending_chain(self, state_adapter: StateAdapterAny) -> None:
        job = await create_one(state_adapter)
        chain = await state_adapter.cancel_chain(tx=None, chain_id=job.chain_id)
        assert chain is not None
        assert chain.status is JobStatus.CANCELLED
        assert chain.completed_at is not None
        cancelled = await state_adapter.get_job(tx=None, job_id=job.id)
        assert cancelled is not None
        assert cancelled.status is JobStatus.CANCELLED
        assert cancelled.completed_at is not None
        assert await state_adapter.get_chain(tx=None, chain_id=job.chain_id) == chain
        acquired = await state_adapter.acquire_jobs(
            tx=None, queues=[QUEUE], limit=1, owner=OWNER, lease_ms=LONG_LEASE_MS
        )
        assert acquired == []

    @pytest.mark.asyncio
    async def test_cancel_running_chain_changes_nothing(
        self, state_adapter: StateAdapterAny
    ) -> None:
        job = await running_job(state_adapter)
        chain = await state_adapter.cancel_chain(tx=None, chain_id=job.chain_id)
        assert chain is not None and chain.status is JobStatus.RUNNING
        assert await state_adapter.get_job(tx=None, job_id=job.id) == job

    @pytest.mark.asyncio
    async def test_cancel_completed_chain_changes_nothing(
        self, state_adapter: StateAdapterAny
    ) -> None:
        job = await running_job(state_adapter)
        done = await state_adapter.complete_job(tx=None, lease=job.lease, output='"kept"')
        chain = await state_adapter.cancel_chain(tx=None, chain_id=job.chain_id)
        assert chain is not None
        assert chain.status is JobStatus.COMPLETED
        assert chain.output == '"kept"'
        assert await state_adapter.get_job(tx=None, job_id=job.id) == done

    @pytest.mark.asyncio
    async def test_cancel_continued_chain_cancels_its_last_job(
        self, state_adapter: StateAdapterAny
    ) -> None:
        first = await running_job(state_adapter)
        second = await state_adapter.continue_job(
            tx=None, lease=first.lease, next_job=next_job(first, "conformance:second")
        )
        chain = await state_adapter.cancel_chain(tx=None, chain_id=first.chain_id)
        assert chain is not None
        assert chain.status is JobStatus.CANCELLED
        assert chain.last_job_id == second.id
        previous = await state_adapter.get_job(tx=None, job_id=first.id)
        assert previous is not None and previous.status is JobStatus.COMPLETED
        last = await state_adapter.get_job(tx=None, job_id=second.id)
        assert last is not None and last.status is JobStatus.CANCELLED

    @pytest.mark.asyncio
    async def test_cancel_unknown_chain_returns_none(self, state_adapter: StateAdapterAny) -> None:
        assert await state_adapter.cancel_chain(tx=None, chain_id=new_job().id) is None

    @pytest.mark.asyncio
    async def test_get_unknown_chain_returns_none(self, state_adapter: StateAdapterAny) -> None:
        await create_one(state_adapter)
        assert await state_adapter.get_chain(tx=None, chain_id=new_job().id) is None
