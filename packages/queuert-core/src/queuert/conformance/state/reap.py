"""Reaping expired leases: only expired ones, the recorded error, exhaustion,
and the stale holder afterwards.

Leases here last a few tens of milliseconds of the database's clock; cases
poll the reaper until it acts instead of guessing how long that takes.
"""

from __future__ import annotations

import pytest

from queuert.conformance.support import (
    SHORT_LEASE_MS,
    StateAdapterAny,
    acquire_one,
    create_one,
    eventually,
    ids,
    new_job,
    running_job,
)
from queuert.errors import LeaseLostError
from queuert.records import LEASE_EXPIRED_ERROR, JobRecord, JobStatus


async def reap_until_some(adapter: StateAdapterAny, *, limit: int = 100) -> list[JobRecord]:
    """Poll the reaper until it returns jobs, and return them."""

    async def probe() -> list[JobRecord]:
        return await adapter.reap_expired_leases(tx=None, limit=limit)

    return await eventually(probe, what="an expired lease to be reaped")


class ReapCases:
    @pytest.mark.asyncio
    async def test_expired_lease_returns_the_job_to_pending(
        self, state_adapter: StateAdapterAny
    ) -> None:
        job = await running_job(state_adapter, lease_ms=SHORT_LEASE_MS)
        (reaped,) = await reap_until_some(state_adapter)
        assert reaped.id == job.id
        assert reaped.status is JobStatus.PENDING
        assert reaped.error == LEASE_EXPIRED_ERROR
        assert reaped.leased_by is None
        assert reaped.leased_until is None
        assert reaped.attempt == 1
        assert reaped.completed_at is None
        assert reaped.scheduled_at <= reaped.updated_at
        assert await state_adapter.get_job(tx=None, job_id=job.id) == reaped
        again = await acquire_one(state_adapter, owner="worker-2")
        assert again.id == job.id and again.attempt == 2

    @pytest.mark.asyncio
    async def test_only_expired_leases_are_reaped(self, state_adapter: StateAdapterAny) -> None:
        live = await running_job(state_adapter, new_job("live"))
        expiring = await running_job(state_adapter, new_job("expiring"), lease_ms=SHORT_LEASE_MS)
        reaped = await reap_until_some(state_adapter)
        assert ids(reaped) == [expiring.id]
        assert await state_adapter.get_job(tx=None, job_id=live.id) == live

    @pytest.mark.asyncio
    async def test_renewed_lease_is_not_reaped(self, state_adapter: StateAdapterAny) -> None:
        renewed = await running_job(state_adapter, new_job("renewed"), lease_ms=SHORT_LEASE_MS)
        await state_adapter.renew_lease(tx=None, lease=renewed.lease, lease_ms=60_000)
        probe = await running_job(state_adapter, new_job("probe"), lease_ms=SHORT_LEASE_MS)
        reaped = await reap_until_some(state_adapter)
        assert ids(reaped) == [probe.id]
        current = await state_adapter.get_job(tx=None, job_id=renewed.id)
        assert current is not None and current.status is JobStatus.RUNNING

    @pytest.mark.asyncio
    async def test_exhausted_job_fails_when_reaped(self, state_adapter: StateAdapterAny) -> None:
        job = await running_job(state_adapter, new_job(max_attempts=1), lease_ms=SHORT_LEASE_MS)
        (reaped,) = await reap_until_some(state_adapter)
        assert reaped.id == job.id
        assert reaped.status is JobStatus.FAILED
        assert reaped.error == LEASE_EXPIRED_ERROR
        assert reaped.completed_at is not None
        assert reaped.leased_by is None
        chain = await state_adapter.get_chain(tx=None, chain_id=job.chain_id)
        assert chain is not None
        assert chain.status is JobStatus.FAILED
        assert chain.error == LEASE_EXPIRED_ERROR

    @pytest.mark.asyncio
    async def test_stale_holder_cannot_finalize_after_reap(
        self, state_adapter: StateAdapterAny
    ) -> None:
        job = await running_job(state_adapter, lease_ms=SHORT_LEASE_MS)
        await reap_until_some(state_adapter)
        with pytest.raises(LeaseLostError):
            await state_adapter.complete_job(tx=None, lease=job.lease, output='"stale"')
        successor = await acquire_one(state_adapter, owner="worker-2")
        with pytest.raises(LeaseLostError):
            await state_adapter.renew_lease(tx=None, lease=job.lease, lease_ms=60_000)
        with pytest.raises(LeaseLostError):
            await state_adapter.complete_job(tx=None, lease=job.lease, output='"stale"')
        done = await state_adapter.complete_job(tx=None, lease=successor.lease, output='"new"')
        assert done.output == '"new"'

    @pytest.mark.asyncio
    async def test_reap_respects_limit(self, state_adapter: StateAdapterAny) -> None:
        await state_adapter.create_jobs(tx=None, jobs=[new_job() for _ in range(3)])
        await state_adapter.acquire_jobs(
            tx=None, queues=["conformance"], limit=3, owner="w", lease_ms=SHORT_LEASE_MS
        )
        first = await reap_until_some(state_adapter, limit=2)
        assert len(first) == 2
        rest = await reap_until_some(state_adapter, limit=2)
        assert len(rest) == 1
        assert not set(ids(first)) & set(ids(rest))
        assert await state_adapter.reap_expired_leases(tx=None, limit=2) == []

    @pytest.mark.asyncio
    async def test_reap_with_nothing_running_returns_nothing(
        self, state_adapter: StateAdapterAny
    ) -> None:
        pending = await create_one(state_adapter, new_job("waiting"))
        done = await running_job(state_adapter)
        done = await state_adapter.complete_job(tx=None, lease=done.lease, output="1")
        assert await state_adapter.reap_expired_leases(tx=None, limit=10) == []
        assert await state_adapter.get_job(tx=None, job_id=pending.id) == pending
        assert await state_adapter.get_job(tx=None, job_id=done.id) == done
