"""Transactions: commit, rollback, isolation, row locks and savepoints."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from queuert.conformance.state.fixtures import PoisonTransaction
from queuert.conformance.support import (
    LONG_LEASE_MS,
    QUEUE,
    SHORT_LEASE_MS,
    WAIT_S,
    StateAdapterAny,
    acquire_one,
    create_one,
    eventually,
    ids,
    new_job,
    next_job,
    running_job,
)
from queuert.errors import LeaseLostError
from queuert.records import ChainFilter, JobFilter, JobRecord, JobStatus, Lease


class Rollback(Exception):
    """Raised inside a transaction block to roll it back."""


LOCKING = ["lock_job", "leased_transaction"]
"""The two ways a finalizer locks its job: lock_job in a transaction, or a leased
transaction with ``lock``."""


@contextlib.asynccontextmanager
async def _locked(adapter: StateAdapterAny, lease: Lease, how: str) -> AsyncIterator[Any]:
    if how == "lock_job":
        async with adapter.transaction() as tx:
            await adapter.lock_job(tx=tx, lease=lease)
            yield tx
    else:
        async with adapter.leased_transaction(lease=lease, lock=True) as tx:
            yield tx


def _require(adapter: StateAdapterAny, *capabilities: str) -> None:
    for capability in capabilities:
        if not getattr(adapter.capabilities, capability):
            pytest.skip(f"adapter declares {capability}=False")


class TransactionCases:
    @pytest.mark.asyncio
    async def test_commit_makes_writes_visible(self, state_adapter: StateAdapterAny) -> None:
        async with state_adapter.transaction() as tx:
            (created,) = await state_adapter.create_jobs(tx=tx, jobs=[new_job()])
        assert await state_adapter.get_job(tx=None, job_id=created.id) == created

    @pytest.mark.asyncio
    async def test_committed_writes_are_visible_to_another_adapter(
        self, state_adapter: StateAdapterAny, second_state_adapter: StateAdapterAny
    ) -> None:
        async with state_adapter.transaction() as tx:
            (created,) = await state_adapter.create_jobs(tx=tx, jobs=[new_job()])
        assert await second_state_adapter.get_job(tx=None, job_id=created.id) == created
        acquired = await acquire_one(second_state_adapter)
        assert acquired.id == created.id

    @pytest.mark.asyncio
    async def test_writes_are_visible_inside_their_transaction(
        self, state_adapter: StateAdapterAny
    ) -> None:
        async with state_adapter.transaction() as tx:
            (created,) = await state_adapter.create_jobs(tx=tx, jobs=[new_job()])
            assert await state_adapter.get_job(tx=tx, job_id=created.id) == created
            page = await state_adapter.list_jobs(tx=tx, filter=JobFilter(), after=None, limit=5)
            assert ids(page.items) == [created.id]
            chain = await state_adapter.get_chain(tx=tx, chain_id=created.chain_id)
            assert chain is not None and chain.last_job_id == created.id
            (acquired,) = await state_adapter.acquire_jobs(
                tx=tx, queues=[QUEUE], limit=1, owner="w", lease_ms=LONG_LEASE_MS
            )
            assert acquired.id == created.id

    @pytest.mark.asyncio
    async def test_rollback_leaves_nothing(self, state_adapter: StateAdapterAny) -> None:
        job = new_job()
        with pytest.raises(Rollback):
            async with state_adapter.transaction() as tx:
                await state_adapter.create_jobs(tx=tx, jobs=[job])
                raise Rollback
        assert await state_adapter.get_job(tx=None, job_id=job.id) is None
        assert await state_adapter.get_chain(tx=None, chain_id=job.chain_id) is None
        page = await state_adapter.list_jobs(tx=None, filter=JobFilter(), after=None, limit=5)
        assert page.items == []
        chains = await state_adapter.list_chains(tx=None, filter=ChainFilter(), after=None, limit=5)
        assert chains.items == []
        assert await state_adapter.time_until_next_job(tx=None, queues=[QUEUE]) is None

    @pytest.mark.asyncio
    async def test_rollback_restores_every_change(self, state_adapter: StateAdapterAny) -> None:
        waiting = await create_one(state_adapter, new_job("waiting"))
        job = await running_job(state_adapter)
        chain = await state_adapter.get_chain(tx=None, chain_id=job.chain_id)
        following = next_job(job, "conformance:2")
        with pytest.raises(Rollback):
            async with state_adapter.transaction() as tx:
                await state_adapter.renew_lease(tx=tx, lease=job.lease, lease_ms=1_000)
                await state_adapter.continue_job(tx=tx, lease=job.lease, next_job=following)
                (taken,) = await state_adapter.acquire_jobs(
                    tx=tx, queues=["conformance:2"], limit=1, owner="w2", lease_ms=LONG_LEASE_MS
                )
                await state_adapter.complete_job(tx=tx, lease=taken.lease, output='"done"')
                await state_adapter.cancel_chain(tx=tx, chain_id=waiting.chain_id)
                raise Rollback
        assert await state_adapter.get_job(tx=None, job_id=job.id) == job
        assert await state_adapter.get_chain(tx=None, chain_id=job.chain_id) == chain
        assert await state_adapter.get_job(tx=None, job_id=following.id) is None
        assert await state_adapter.get_job(tx=None, job_id=waiting.id) == waiting
        done = await state_adapter.complete_job(tx=None, lease=job.lease, output='"after"')
        assert done.status is JobStatus.COMPLETED

    @pytest.mark.asyncio
    async def test_rolled_back_acquire_leaves_the_job_eligible(
        self, state_adapter: StateAdapterAny
    ) -> None:
        created = await create_one(state_adapter)
        with pytest.raises(Rollback):
            async with state_adapter.transaction() as tx:
                await state_adapter.acquire_jobs(
                    tx=tx, queues=[QUEUE], limit=1, owner="w1", lease_ms=LONG_LEASE_MS
                )
                raise Rollback
        assert await state_adapter.get_job(tx=None, job_id=created.id) == created
        acquired = await acquire_one(state_adapter, owner="w2")
        assert acquired.id == created.id and acquired.attempt == 1

    @pytest.mark.asyncio
    async def test_rolled_back_reap_keeps_the_lease(self, state_adapter: StateAdapterAny) -> None:
        job = await running_job(state_adapter, lease_ms=SHORT_LEASE_MS)

        async def reap_in_rolled_back_transaction() -> bool:
            reaped: list[JobRecord] = []
            with contextlib.suppress(Rollback):
                async with state_adapter.transaction() as tx:
                    reaped = await state_adapter.reap_expired_leases(tx=tx, limit=10)
                    raise Rollback
            return bool(reaped)

        await eventually(reap_in_rolled_back_transaction, what="the lease to expire")
        assert await state_adapter.get_job(tx=None, job_id=job.id) == job

    @pytest.mark.asyncio
    async def test_rolled_back_delete_restores_the_chain(
        self, state_adapter: StateAdapterAny
    ) -> None:
        first = await running_job(state_adapter)
        second = await state_adapter.continue_job(
            tx=None, lease=first.lease, next_job=next_job(first, "conformance:2")
        )
        first = await state_adapter.get_job(tx=None, job_id=first.id) or first
        chain = await state_adapter.get_chain(tx=None, chain_id=first.chain_id)
        with pytest.raises(Rollback):
            async with state_adapter.transaction() as tx:
                assert await state_adapter.delete_chains(tx=tx, chain_ids=[first.chain_id]) == 1
                assert await state_adapter.get_job(tx=tx, job_id=first.id) is None
                raise Rollback
        assert await state_adapter.get_chain(tx=None, chain_id=first.chain_id) == chain
        assert await state_adapter.get_job(tx=None, job_id=first.id) == first
        assert await state_adapter.get_job(tx=None, job_id=second.id) == second

    @pytest.mark.asyncio
    async def test_lease_error_keeps_the_transaction_usable(
        self, state_adapter: StateAdapterAny
    ) -> None:
        job = await running_job(state_adapter, new_job("held"))
        stale = replace(job.lease, owner="someone-else")
        async with state_adapter.transaction() as tx:
            (before,) = await state_adapter.create_jobs(tx=tx, jobs=[new_job()])
            with pytest.raises(LeaseLostError):
                await state_adapter.complete_job(tx=tx, lease=stale, output="1")
            (after,) = await state_adapter.create_jobs(tx=tx, jobs=[new_job()])
        assert await state_adapter.get_job(tx=None, job_id=before.id) == before
        assert await state_adapter.get_job(tx=None, job_id=after.id) == after
        assert await state_adapter.get_job(tx=None, job_id=job.id) == job

    @pytest.mark.asyncio
    async def test_uncommitted_writes_are_invisible_outside(
        self, state_adapter: StateAdapterAny, second_state_adapter: StateAdapterAny
    ) -> None:
        _require(state_adapter, "concurrent_transactions")
        held = await running_job(state_adapter, new_job("held"))
        async with state_adapter.transaction() as tx:
            (created,) = await state_adapter.create_jobs(tx=tx, jobs=[new_job()])
            await state_adapter.complete_job(tx=tx, lease=held.lease, output='"uncommitted"')
            for reader in (state_adapter, second_state_adapter):
                assert await reader.get_job(tx=None, job_id=created.id) is None
                assert await reader.get_chain(tx=None, chain_id=created.chain_id) is None
                assert await reader.get_job(tx=None, job_id=held.id) == held
                page = await reader.list_jobs(tx=None, filter=JobFilter(), after=None, limit=5)
                assert ids(page.items) == [held.id]
        assert await second_state_adapter.get_job(tx=None, job_id=created.id) == created

    @pytest.mark.asyncio
    @pytest.mark.parametrize("how", LOCKING)
    async def test_locked_job_blocks_a_competing_finalize(
        self, state_adapter: StateAdapterAny, second_state_adapter: StateAdapterAny, how: str
    ) -> None:
        _require(state_adapter, "row_locks", "concurrent_transactions")
        job = await running_job(state_adapter)
        competitor: asyncio.Task[object] | None = None
        try:
            async with _locked(state_adapter, job.lease, how) as tx:
                competitor = asyncio.create_task(
                    second_state_adapter.complete_job(tx=None, lease=job.lease, output='"theirs"')
                )
                done, _ = await asyncio.wait({competitor}, timeout=0.3)
                assert not done, "a guarded write went through while the job was locked"
                await state_adapter.complete_job(tx=tx, lease=job.lease, output='"ours"')
            with pytest.raises(LeaseLostError):
                await asyncio.wait_for(competitor, WAIT_S)
        finally:
            if competitor is not None and not competitor.done():
                competitor.cancel()
        final = await state_adapter.get_job(tx=None, job_id=job.id)
        assert final is not None and final.output == '"ours"'

    @pytest.mark.asyncio
    @pytest.mark.parametrize("how", LOCKING)
    async def test_locked_job_is_not_reaped(
        self, state_adapter: StateAdapterAny, second_state_adapter: StateAdapterAny, how: str
    ) -> None:
        _require(state_adapter, "row_locks", "concurrent_transactions")
        job = await running_job(state_adapter, lease_ms=SHORT_LEASE_MS)
        reaper: asyncio.Task[list[JobRecord]] | None = None
        try:
            async with _locked(state_adapter, job.lease, how) as tx:
                # Let the lease lapse while the finalizer holds the job.
                await asyncio.sleep(4 * SHORT_LEASE_MS / 1000)
                reaper = asyncio.create_task(_reap(second_state_adapter))
                await asyncio.wait({reaper}, timeout=0.3)
                await state_adapter.complete_job(tx=tx, lease=job.lease, output='"ours"')
            reaped = await asyncio.wait_for(reaper, WAIT_S)
        finally:
            if reaper is not None and not reaper.done():
                reaper.cancel()
        assert job.id not in ids(reaped)
        final = await state_adapter.get_job(tx=None, job_id=job.id)
        assert final is not None
        assert final.status is JobStatus.COMPLETED and final.output == '"ours"'

    @pytest.mark.asyncio
    async def test_savepoint_isolates_a_failed_statement(
        self, state_adapter: StateAdapterAny, poison_transaction: PoisonTransaction
    ) -> None:
        _require(state_adapter, "savepoints")
        kept, dropped, later = new_job(), new_job(), new_job()
        failed = False
        async with state_adapter.transaction() as tx:
            await state_adapter.create_jobs(tx=tx, jobs=[kept])
            try:
                async with state_adapter.savepoint(tx=tx) as inner:
                    await state_adapter.create_jobs(tx=inner, jobs=[dropped])
                    await poison_transaction(inner)
            except Exception:
                failed = True
            await state_adapter.create_jobs(tx=tx, jobs=[later])
        assert failed, "poison_transaction did not make the savepoint fail"
        assert await state_adapter.get_job(tx=None, job_id=kept.id) is not None
        assert await state_adapter.get_job(tx=None, job_id=dropped.id) is None
        assert await state_adapter.get_job(tx=None, job_id=later.id) is not None

    @pytest.mark.asyncio
    async def test_savepoint_keeps_writes_on_success(self, state_adapter: StateAdapterAny) -> None:
        _require(state_adapter, "savepoints")
        job = new_job()
        async with state_adapter.transaction() as tx:
            async with state_adapter.savepoint(tx=tx) as inner:
                await state_adapter.create_jobs(tx=inner, jobs=[job])
            assert await state_adapter.get_job(tx=tx, job_id=job.id) is not None
        assert await state_adapter.get_job(tx=None, job_id=job.id) is not None

    @pytest.mark.asyncio
    async def test_nested_savepoints_roll_back_separately(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require(state_adapter, "savepoints")
        outer_job, inner_job = new_job(), new_job()
        async with (
            state_adapter.transaction() as tx,
            state_adapter.savepoint(tx=tx) as outer,
        ):
            await state_adapter.create_jobs(tx=outer, jobs=[outer_job])
            with pytest.raises(Rollback):
                async with state_adapter.savepoint(tx=outer) as inner:
                    await state_adapter.create_jobs(tx=inner, jobs=[inner_job])
                    raise Rollback
            assert await state_adapter.get_job(tx=outer, job_id=inner_job.id) is None
        assert await state_adapter.get_job(tx=None, job_id=outer_job.id) is not None
        assert await state_adapter.get_job(tx=None, job_id=inner_job.id) is None

    @pytest.mark.asyncio
    async def test_rollback_discards_savepoint_writes(self, state_adapter: StateAdapterAny) -> None:
        _require(state_adapter, "savepoints")
        job = new_job()
        with pytest.raises(Rollback):
            async with state_adapter.transaction() as tx:
                async with state_adapter.savepoint(tx=tx) as inner:
                    await state_adapter.create_jobs(tx=inner, jobs=[job])
                raise Rollback
        assert await state_adapter.get_job(tx=None, job_id=job.id) is None


async def _reap(adapter: StateAdapterAny) -> list[JobRecord]:
    return await adapter.reap_expired_leases(tx=None, limit=10)
