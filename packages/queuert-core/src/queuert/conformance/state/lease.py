"""The lease guard on every guarded operation, renewing and locking."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from queuert.conformance.support import (
    StateAdapterAny,
    assert_near,
    ids,
    new_job,
    next_job,
    running_job,
    slack,
    tolerance,
)
from queuert.errors import LeaseLostError
from queuert.records import JobError, JobFilter, JobRecord, JobStatus, Lease

GuardedCall = Callable[[StateAdapterAny, JobRecord, Lease], Awaitable[object]]


async def _renew(adapter: StateAdapterAny, job: JobRecord, lease: Lease) -> object:
    return await adapter.renew_lease(tx=None, lease=lease, lease_ms=60_000)


async def _lock(adapter: StateAdapterAny, job: JobRecord, lease: Lease) -> object:
    async with adapter.transaction() as tx:
        return await adapter.lock_job(tx=tx, lease=lease)


async def _verify(adapter: StateAdapterAny, job: JobRecord, lease: Lease) -> object:
    async with adapter.transaction() as tx:
        return await adapter.verify_lease(tx=tx, lease=lease)


async def _leased(adapter: StateAdapterAny, lease: Lease, *, lock: bool) -> object:
    async with adapter.leased_transaction(lease=lease, lock=lock):
        raise AssertionError("the block of a leased transaction ran without the lease")


async def _leased_verify(adapter: StateAdapterAny, job: JobRecord, lease: Lease) -> object:
    return await _leased(adapter, lease, lock=False)


async def _leased_lock(adapter: StateAdapterAny, job: JobRecord, lease: Lease) -> object:
    return await _leased(adapter, lease, lock=True)


async def _complete(adapter: StateAdapterAny, job: JobRecord, lease: Lease) -> object:
    return await adapter.complete_job(tx=None, lease=lease, output='"stale"')


async def _continue(adapter: StateAdapterAny, job: JobRecord, lease: Lease) -> object:
    return await adapter.continue_job(tx=None, lease=lease, next_job=next_job(job))


async def _reschedule(adapter: StateAdapterAny, job: JobRecord, lease: Lease) -> object:
    error = JobError(type="Stale", message="stale")
    return await adapter.reschedule_job(tx=None, lease=lease, error=error, delay_ms=1_000)


async def _fail(adapter: StateAdapterAny, job: JobRecord, lease: Lease) -> object:
    return await adapter.fail_job(tx=None, lease=lease, error=JobError("Stale", "stale"))


GUARDED_OPERATIONS: dict[str, GuardedCall] = {
    "renew_lease": _renew,
    "lock_job": _lock,
    "verify_lease": _verify,
    "leased_transaction(verify)": _leased_verify,
    "leased_transaction(lock)": _leased_lock,
    "complete_job": _complete,
    "continue_job": _continue,
    "reschedule_job": _reschedule,
    "fail_job": _fail,
}

STALE_LEASES = ("wrong_owner", "wrong_attempt", "not_running")


class LeaseCases:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("operation", list(GUARDED_OPERATIONS))
    @pytest.mark.parametrize("stale", STALE_LEASES)
    async def test_guarded_operation_rejects_a_stale_lease(
        self, state_adapter: StateAdapterAny, operation: str, stale: str
    ) -> None:
        job = await running_job(state_adapter)
        lease = job.lease
        if stale == "wrong_owner":
            lease = replace(lease, owner="someone-else")
        elif stale == "wrong_attempt":
            lease = replace(lease, attempt=lease.attempt + 1)
        else:
            # Back to pending: the lease's owner and attempt no longer hold a running job.
            await state_adapter.reschedule_job(tx=None, lease=lease, error=None, delay_ms=60_000)
        before = await state_adapter.get_job(tx=None, job_id=job.id)
        chain_before = await state_adapter.get_chain(tx=None, chain_id=job.chain_id)

        with pytest.raises(LeaseLostError) as raised:
            await GUARDED_OPERATIONS[operation](state_adapter, job, lease)

        assert raised.value.job_id == job.id
        assert await state_adapter.get_job(tx=None, job_id=job.id) == before
        assert await state_adapter.get_chain(tx=None, chain_id=job.chain_id) == chain_before
        page = await state_adapter.list_jobs(
            tx=None, filter=JobFilter(chain_id=job.chain_id), after=None, limit=10
        )
        assert ids(page.items) == [job.id]

    @pytest.mark.asyncio
    async def test_guard_rejects_a_lease_of_an_unknown_job(
        self, state_adapter: StateAdapterAny
    ) -> None:
        missing = Lease(job_id=new_job().id, owner="worker-1", attempt=1)
        with pytest.raises(LeaseLostError):
            await state_adapter.complete_job(tx=None, lease=missing, output="1")

    @pytest.mark.asyncio
    async def test_renew_lease_extends_expiry(self, state_adapter: StateAdapterAny) -> None:
        job = await running_job(state_adapter, lease_ms=1_000)
        expiry = await state_adapter.renew_lease(tx=None, lease=job.lease, lease_ms=120_000)
        assert job.leased_until is not None
        assert expiry > job.leased_until
        renewed = await state_adapter.get_job(tx=None, job_id=job.id)
        assert renewed is not None
        assert_near(renewed.leased_until, expiry, tolerance(state_adapter))
        assert_near(
            expiry, renewed.updated_at + timedelta(milliseconds=120_000), slack(state_adapter)
        )
        assert renewed.status is JobStatus.RUNNING
        assert renewed.leased_by == job.leased_by
        assert renewed.attempt == job.attempt

    @pytest.mark.asyncio
    async def test_renewed_lease_still_guards(self, state_adapter: StateAdapterAny) -> None:
        job = await running_job(state_adapter)
        await state_adapter.renew_lease(tx=None, lease=job.lease, lease_ms=60_000)
        done = await state_adapter.complete_job(tx=None, lease=job.lease, output='"ok"')
        assert done.status is JobStatus.COMPLETED

    @pytest.mark.asyncio
    async def test_lock_job_returns_the_job(self, state_adapter: StateAdapterAny) -> None:
        job = await running_job(state_adapter)
        async with state_adapter.transaction() as tx:
            locked = await state_adapter.lock_job(tx=tx, lease=job.lease)
        assert locked == job

    @pytest.mark.asyncio
    async def test_verify_lease_returns_the_job(self, state_adapter: StateAdapterAny) -> None:
        job = await running_job(state_adapter)
        async with state_adapter.transaction() as tx:
            verified = await state_adapter.verify_lease(tx=tx, lease=job.lease)
        assert verified == job

    @pytest.mark.asyncio
    @pytest.mark.parametrize("lock", [False, True], ids=["verify", "lock"])
    async def test_leased_transaction_commits_its_block(
        self, state_adapter: StateAdapterAny, lock: bool
    ) -> None:
        job = await running_job(state_adapter)
        started = new_job()
        async with state_adapter.leased_transaction(lease=job.lease, lock=lock) as tx:
            await state_adapter.create_jobs(tx=tx, jobs=[started])
            await state_adapter.complete_job(tx=tx, lease=job.lease, output='"done"')
        done = await state_adapter.get_job(tx=None, job_id=job.id)
        assert done is not None and done.status is JobStatus.COMPLETED
        assert await state_adapter.get_job(tx=None, job_id=started.id) is not None

    @pytest.mark.asyncio
    @pytest.mark.parametrize("lock", [False, True], ids=["verify", "lock"])
    async def test_leased_transaction_rolls_back_when_its_block_raises(
        self, state_adapter: StateAdapterAny, lock: bool
    ) -> None:
        job = await running_job(state_adapter)
        started = new_job()
        with pytest.raises(RuntimeError):
            async with state_adapter.leased_transaction(lease=job.lease, lock=lock) as tx:
                await state_adapter.create_jobs(tx=tx, jobs=[started])
                await state_adapter.complete_job(tx=tx, lease=job.lease, output='"done"')
                raise RuntimeError("the caller gives up")
        assert await state_adapter.get_job(tx=None, job_id=job.id) == job
        assert await state_adapter.get_job(tx=None, job_id=started.id) is None

    @pytest.mark.asyncio
    @pytest.mark.parametrize("end", ["complete", "continue"])
    async def test_locked_job_ends_when_its_leased_transaction_commits(
        self, state_adapter: StateAdapterAny, end: str
    ) -> None:
        job = await running_job(state_adapter)
        started = new_job()
        following = next_job(job, input='{"name": "O\'Brien \\\\ $2"}')
        # Text that a statement carrying it as a literal must keep exactly.
        output = '{"text": "it\'s \\\\ a $1 \\"quote\\" \\u2603 \u2603", "n": 1.50}'
        async with state_adapter.leased_transaction(lease=job.lease, lock=True) as tx:
            await state_adapter.create_jobs(tx=tx, jobs=[started])
            if end == "complete":
                await state_adapter.complete_locked_job(tx=tx, lease=job.lease, output=output)
            else:
                await state_adapter.continue_locked_job(tx=tx, lease=job.lease, next_job=following)
        done = await state_adapter.get_job(tx=None, job_id=job.id)
        assert done is not None and done.status is JobStatus.COMPLETED
        assert done.leased_by is None and done.completed_at is not None
        assert await state_adapter.get_job(tx=None, job_id=started.id) is not None
        chain = await state_adapter.get_chain(tx=None, chain_id=job.chain_id)
        assert chain is not None
        if end == "complete":
            assert done.output == output and done.next_job_id is None
            assert chain.status is JobStatus.COMPLETED and chain.output == output
        else:
            assert done.next_job_id == following.id
            added = await state_adapter.get_job(tx=None, job_id=following.id)
            assert added is not None and added.status is JobStatus.PENDING
            assert added.position == job.position + 1 and added.input == following.input
            assert chain.status is JobStatus.PENDING

    @pytest.mark.asyncio
    @pytest.mark.parametrize("end", ["complete", "continue"])
    async def test_locked_job_end_is_undone_when_the_block_raises(
        self, state_adapter: StateAdapterAny, end: str
    ) -> None:
        job = await running_job(state_adapter)
        following = next_job(job)
        with pytest.raises(RuntimeError):
            async with state_adapter.leased_transaction(lease=job.lease, lock=True) as tx:
                if end == "complete":
                    await state_adapter.complete_locked_job(tx=tx, lease=job.lease, output="1")
                else:
                    await state_adapter.continue_locked_job(
                        tx=tx, lease=job.lease, next_job=following
                    )
                raise RuntimeError("the caller gives up")
        assert await state_adapter.get_job(tx=None, job_id=job.id) == job
        assert await state_adapter.get_job(tx=None, job_id=following.id) is None
        # The transaction's connection or lock is free again: the job can still end.
        async with state_adapter.leased_transaction(lease=job.lease, lock=True) as tx:
            await state_adapter.complete_locked_job(tx=tx, lease=job.lease, output="2")
        done = await state_adapter.get_job(tx=None, job_id=job.id)
        assert done is not None and done.output == "2"

    @pytest.mark.asyncio
    async def test_lapsed_lease_guards_until_reaped(self, state_adapter: StateAdapterAny) -> None:
        # The guard checks owner and attempt only: expiry is the reaper's business.
        job = await running_job(state_adapter, lease_ms=1)
        await asyncio.sleep(0.02)
        done = await state_adapter.complete_job(tx=None, lease=job.lease, output='"late"')
        assert done.status is JobStatus.COMPLETED and done.output == '"late"'
