"""Deduplicated chain starts: one chain per key in scope, also when several
transactions start one key at once (capability ``deduplication``)."""

from __future__ import annotations

import asyncio

import pytest

from queuert.conformance.support import (
    StateAdapterAny,
    acquire_one,
    eventually,
    new_job,
    unique,
)
from queuert.records import ChainFilter, DedupKey, DedupScope, JobError, NewJob

QUEUE = "conformance-dedup"


def _require_dedup(adapter: StateAdapterAny) -> None:
    if not adapter.capabilities.deduplication:
        pytest.skip("the adapter does not declare the `deduplication` capability")


async def _start(
    adapter: StateAdapterAny,
    key: str,
    *,
    scope: DedupScope = DedupScope.INCOMPLETE,
    window_ms: int | None = None,
    job: NewJob | None = None,
    tx: object = None,
) -> tuple[str, NewJob]:
    job = job or new_job(QUEUE)
    (holder,) = await adapter.create_deduplicated_jobs(
        tx=tx, jobs=[job], dedup=[DedupKey(key, scope, window_ms)]
    )
    return holder, job


class DedupCases:
    @pytest.mark.asyncio
    async def test_a_held_key_starts_no_second_chain(self, state_adapter: StateAdapterAny) -> None:
        _require_dedup(state_adapter)
        key = unique("upload")
        first, job = await _start(state_adapter, key)
        assert first == job.chain_id
        again, other = await _start(state_adapter, key)
        assert again == first
        assert await state_adapter.get_job(tx=None, job_id=other.id) is None
        chain = await state_adapter.get_chain(tx=None, chain_id=first)
        assert chain is not None and chain.dedup_key == key

    @pytest.mark.asyncio
    async def test_keys_are_scoped_by_chain_name(self, state_adapter: StateAdapterAny) -> None:
        _require_dedup(state_adapter)
        key = unique("shared")
        first, _ = await _start(state_adapter, key)
        other, job = await _start(state_adapter, key, job=new_job("conformance-other"))
        assert other == job.chain_id != first

    @pytest.mark.asyncio
    @pytest.mark.parametrize("end", ["complete", "fail", "cancel"])
    async def test_an_ended_chain_releases_an_incomplete_scoped_key(
        self, state_adapter: StateAdapterAny, end: str
    ) -> None:
        _require_dedup(state_adapter)
        key = unique("job")
        first, _ = await _start(state_adapter, key)
        if end == "cancel":
            await state_adapter.cancel_chain(tx=None, chain_id=first)
        else:
            running = await acquire_one(state_adapter, QUEUE)
            if end == "complete":
                await state_adapter.complete_job(tx=None, lease=running.lease, output="1")
            else:
                error = JobError(type="Boom", message="boom")
                await state_adapter.fail_job(tx=None, lease=running.lease, error=error)
        second, job = await _start(state_adapter, key)
        assert second == job.chain_id != first
        third, _ = await _start(state_adapter, key)
        assert third == second

    @pytest.mark.asyncio
    async def test_any_scope_keeps_the_key_after_the_chain_ends(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require_dedup(state_adapter)
        key = unique("once")
        first, _ = await _start(state_adapter, key, scope=DedupScope.ANY)
        running = await acquire_one(state_adapter, QUEUE)
        await state_adapter.complete_job(tx=None, lease=running.lease, output="1")
        again, _ = await _start(state_adapter, key, scope=DedupScope.ANY)
        assert again == first
        within, _ = await _start(state_adapter, key, scope=DedupScope.ANY, window_ms=3_600_000)
        assert within == first

    @pytest.mark.asyncio
    async def test_any_scope_with_a_window_releases_the_key_once_it_passed(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require_dedup(state_adapter)
        key = unique("window")
        first, _ = await _start(state_adapter, key, scope=DedupScope.ANY, window_ms=50)

        async def new_chain_started() -> str | None:
            holder, job = await _start(state_adapter, key, scope=DedupScope.ANY, window_ms=50)
            return holder if holder == job.chain_id else None

        second = await eventually(new_chain_started, what="the 50 ms window to pass")
        assert second != first

    @pytest.mark.asyncio
    async def test_a_batch_with_repeated_keys_starts_one_chain_per_key(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require_dedup(state_adapter)
        k1, k2 = unique("a"), unique("b")
        jobs = [new_job(QUEUE) for _ in range(4)]
        holders = await state_adapter.create_deduplicated_jobs(
            tx=None, jobs=jobs, dedup=[DedupKey(k) for k in (k1, k2, k1, k2)]
        )
        assert holders == [jobs[0].id, jobs[1].id, jobs[0].id, jobs[1].id]
        assert await state_adapter.get_job(tx=None, job_id=jobs[2].id) is None
        assert await state_adapter.get_job(tx=None, job_id=jobs[3].id) is None

    @pytest.mark.asyncio
    async def test_a_rolled_back_start_releases_the_key(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require_dedup(state_adapter)
        key = unique("rollback")
        with pytest.raises(RuntimeError):
            async with state_adapter.transaction() as tx:
                await _start(state_adapter, key, tx=tx)
                raise RuntimeError("roll back")
        holder, job = await _start(state_adapter, key)
        assert holder == job.chain_id

    @pytest.mark.asyncio
    async def test_a_deleted_chain_releases_the_key(self, state_adapter: StateAdapterAny) -> None:
        _require_dedup(state_adapter)
        key = unique("deleted")
        first, _ = await _start(state_adapter, key, scope=DedupScope.ANY)
        await state_adapter.delete_chains(tx=None, chain_ids=[first])
        second, job = await _start(state_adapter, key, scope=DedupScope.ANY)
        assert second == job.chain_id != first

    @pytest.mark.asyncio
    async def test_concurrent_starts_of_one_key_start_one_chain(
        self, state_adapter: StateAdapterAny, second_state_adapter: StateAdapterAny
    ) -> None:
        _require_dedup(state_adapter)
        key = unique("race")
        adapters = [state_adapter, second_state_adapter] * 4
        results = await asyncio.gather(*(_start(adapter, key) for adapter in adapters))
        holders = {holder for holder, _ in results}
        assert len(holders) == 1
        stored = [
            job
            for _, job in results
            if await state_adapter.get_job(tx=None, job_id=job.id) is not None
        ]
        assert [job.chain_id for job in stored] == list(holders)

    @pytest.mark.asyncio
    async def test_a_start_waits_for_an_open_transaction_holding_the_key(
        self, state_adapter: StateAdapterAny, second_state_adapter: StateAdapterAny
    ) -> None:
        _require_dedup(state_adapter)
        if not state_adapter.capabilities.concurrent_transactions:
            pytest.skip("the adapter does not declare `concurrent_transactions`")
        key = unique("open")
        async with state_adapter.transaction() as tx:
            first, _ = await _start(state_adapter, key, tx=tx)
            racing = asyncio.create_task(_start(second_state_adapter, key))
            await asyncio.wait({racing}, timeout=0.3)
        holder, job = await racing
        assert holder == first
        assert await state_adapter.get_job(tx=None, job_id=job.id) is None

    @pytest.mark.asyncio
    async def test_chains_are_filtered_by_dedup_key(self, state_adapter: StateAdapterAny) -> None:
        _require_dedup(state_adapter)
        key = unique("filter")
        wanted, _ = await _start(state_adapter, key)
        await _start(state_adapter, unique("other"))
        await state_adapter.create_jobs(tx=None, jobs=[new_job(QUEUE)])
        page = await state_adapter.list_chains(
            tx=None, filter=ChainFilter(dedup_key=key), after=None, limit=10
        )
        assert [(c.id, c.dedup_key) for c in page.items] == [(wanted, key)]
