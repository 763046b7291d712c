"""Deleting chains with all their jobs."""

from __future__ import annotations

import pytest

from queuert.conformance.support import (
    LONG_LEASE_MS,
    OWNER,
    StateAdapterAny,
    create_one,
    ids,
    new_job,
    next_job,
    running_job,
)
from queuert.records import ChainFilter, JobFilter


class DeleteCases:
    @pytest.mark.asyncio
    async def test_delete_removes_every_job_of_the_chain(
        self, state_adapter: StateAdapterAny
    ) -> None:
        first = await running_job(state_adapter)
        second = await state_adapter.continue_job(
            tx=None, lease=first.lease, next_job=next_job(first, "conformance:second")
        )
        assert await state_adapter.delete_chains(tx=None, chain_ids=[first.chain_id]) == 1
        assert await state_adapter.get_chain(tx=None, chain_id=first.chain_id) is None
        assert await state_adapter.get_job(tx=None, job_id=first.id) is None
        assert await state_adapter.get_job(tx=None, job_id=second.id) is None
        acquired = await state_adapter.acquire_jobs(
            tx=None, queues=["conformance:second"], limit=1, owner=OWNER, lease_ms=LONG_LEASE_MS
        )
        assert acquired == []

    @pytest.mark.asyncio
    async def test_delete_counts_only_existing_chains(self, state_adapter: StateAdapterAny) -> None:
        a = await create_one(state_adapter)
        b = await create_one(state_adapter)
        deleted = await state_adapter.delete_chains(
            tx=None, chain_ids=[a.chain_id, new_job().id, b.chain_id]
        )
        assert deleted == 2

    @pytest.mark.asyncio
    async def test_delete_leaves_other_chains(self, state_adapter: StateAdapterAny) -> None:
        gone = await create_one(state_adapter)
        kept = await create_one(state_adapter)
        await state_adapter.delete_chains(tx=None, chain_ids=[gone.chain_id])
        assert await state_adapter.get_job(tx=None, job_id=kept.id) == kept
        jobs = await state_adapter.list_jobs(tx=None, filter=JobFilter(), after=None, limit=10)
        assert ids(jobs.items) == [kept.id]
        chains = await state_adapter.list_chains(
            tx=None, filter=ChainFilter(), after=None, limit=10
        )
        assert ids(chains.items) == [kept.chain_id]

    @pytest.mark.asyncio
    async def test_delete_nothing_returns_zero(self, state_adapter: StateAdapterAny) -> None:
        job = await create_one(state_adapter)
        assert await state_adapter.delete_chains(tx=None, chain_ids=[]) == 0
        assert await state_adapter.delete_chains(tx=None, chain_ids=[new_job().id]) == 0
        assert await state_adapter.get_job(tx=None, job_id=job.id) == job

    @pytest.mark.asyncio
    async def test_delete_counts_a_repeated_id_once(self, state_adapter: StateAdapterAny) -> None:
        job = await create_one(state_adapter)
        deleted = await state_adapter.delete_chains(tx=None, chain_ids=[job.chain_id] * 2)
        assert deleted == 1
