"""Control from outside a worker: cancelling a chain at any point (a running job's
lease revoked), resuming a failed or cancelled job, completing a job without a
lease, and purging ended chains."""

from __future__ import annotations

from datetime import timedelta

import pytest

from queuert.conformance.support import (
    LONG_LEASE_MS,
    OWNER,
    StateAdapterAny,
    acquire_one,
    create_one,
    new_job,
    next_job,
    running_job,
)
from queuert.errors import ChainEndedError, JobNotFoundError, JobStateError, LeaseLostError
from queuert.records import JobError, JobStatus

_ERROR = JobError(type="Boom", message="it broke")


class ControlCases:
    # -- revoke_chain -----------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_revoke_running_chain_takes_the_lease(
        self, state_adapter: StateAdapterAny
    ) -> None:
        job = await running_job(state_adapter)
        revoked = await state_adapter.revoke_chain(tx=None, chain_id=job.chain_id)
        assert revoked.chain.status is JobStatus.CANCELLED
        assert revoked.revoked_lease == job.lease
        stored = await state_adapter.get_job(tx=None, job_id=job.id)
        assert stored is not None and stored.status is JobStatus.CANCELLED
        assert stored.leased_by is None and stored.completed_at is not None
        with pytest.raises(LeaseLostError):
            await state_adapter.renew_lease(tx=None, lease=job.lease, lease_ms=LONG_LEASE_MS)
        with pytest.raises(LeaseLostError):
            await state_adapter.complete_job(tx=None, lease=job.lease, output="1")
        with pytest.raises(LeaseLostError):
            async with state_adapter.transaction() as tx:
                await state_adapter.lock_job(tx=tx, lease=job.lease)
        after = await state_adapter.get_chain(tx=None, chain_id=job.chain_id)
        assert after is not None and after.status is JobStatus.CANCELLED

    @pytest.mark.asyncio
    async def test_revoke_pending_chain_has_no_lease(self, state_adapter: StateAdapterAny) -> None:
        job = await create_one(state_adapter)
        revoked = await state_adapter.revoke_chain(tx=None, chain_id=job.chain_id)
        assert revoked.chain.status is JobStatus.CANCELLED
        assert revoked.revoked_lease is None
        acquired = await state_adapter.acquire_jobs(
            tx=None, queues=[job.queue], limit=1, owner=OWNER, lease_ms=LONG_LEASE_MS
        )
        assert acquired == []

    @pytest.mark.asyncio
    async def test_revoke_ended_chain_raises_and_changes_nothing(
        self, state_adapter: StateAdapterAny
    ) -> None:
        job = await running_job(state_adapter)
        await state_adapter.complete_job(tx=None, lease=job.lease, output='"done"')
        before = await state_adapter.get_chain(tx=None, chain_id=job.chain_id)
        with pytest.raises(ChainEndedError):
            await state_adapter.revoke_chain(tx=None, chain_id=job.chain_id)
        assert await state_adapter.get_chain(tx=None, chain_id=job.chain_id) == before

    @pytest.mark.asyncio
    async def test_revoke_unknown_chain_raises(self, state_adapter: StateAdapterAny) -> None:
        with pytest.raises(JobNotFoundError):
            await state_adapter.revoke_chain(tx=None, chain_id=new_job().id)

    @pytest.mark.asyncio
    async def test_rolled_back_revoke_keeps_the_lease(self, state_adapter: StateAdapterAny) -> None:
        job = await running_job(state_adapter)
        with pytest.raises(RuntimeError):
            async with state_adapter.transaction() as tx:
                await state_adapter.revoke_chain(tx=tx, chain_id=job.chain_id)
                raise RuntimeError("roll back")
        await state_adapter.renew_lease(tx=None, lease=job.lease, lease_ms=LONG_LEASE_MS)

    # -- resume_job -------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_resume_failed_job_gives_a_fresh_budget(
        self, state_adapter: StateAdapterAny
    ) -> None:
        job = await running_job(state_adapter, new_job(max_attempts=1))
        await state_adapter.fail_job(tx=None, lease=job.lease, error=_ERROR)
        resumed = await state_adapter.resume_job(tx=None, job_id=job.id)
        assert resumed.status is JobStatus.PENDING
        assert resumed.attempt == 0 and resumed.completed_at is None
        assert resumed.error == _ERROR
        again = await acquire_one(state_adapter, job.queue)
        assert again.id == job.id and again.attempt == 1

    @pytest.mark.asyncio
    async def test_resume_continues_at_the_job_the_chain_ended_on(
        self, state_adapter: StateAdapterAny
    ) -> None:
        first = await running_job(state_adapter)
        second = await state_adapter.continue_job(
            tx=None, lease=first.lease, next_job=next_job(first, "conformance:second")
        )
        chain = await state_adapter.revoke_chain(tx=None, chain_id=first.chain_id)
        assert chain.chain.last_job_id == second.id
        with pytest.raises(JobStateError):
            await state_adapter.resume_job(tx=None, job_id=first.id)
        resumed = await state_adapter.resume_job(tx=None, job_id=second.id)
        assert resumed.id == second.id and resumed.status is JobStatus.PENDING
        after = await state_adapter.get_chain(tx=None, chain_id=first.chain_id)
        assert after is not None and after.status is JobStatus.PENDING

    @pytest.mark.asyncio
    async def test_resume_refuses_jobs_that_have_not_failed(
        self, state_adapter: StateAdapterAny
    ) -> None:
        pending = await create_one(state_adapter, new_job("resume-pending"))
        running = await running_job(state_adapter, new_job("resume-running"))
        done = await running_job(state_adapter, new_job("resume-done"))
        await state_adapter.complete_job(tx=None, lease=done.lease, output="1")
        for job in (pending, running, done):
            before = await state_adapter.get_job(tx=None, job_id=job.id)
            with pytest.raises(JobStateError):
                await state_adapter.resume_job(tx=None, job_id=job.id)
            assert await state_adapter.get_job(tx=None, job_id=job.id) == before
        with pytest.raises(JobNotFoundError):
            await state_adapter.resume_job(tx=None, job_id=new_job().id)

    # -- settle_job -------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_settle_pending_job_with_output(self, state_adapter: StateAdapterAny) -> None:
        job = await create_one(state_adapter)
        settled = await state_adapter.settle_job(
            tx=None, job_id=job.id, output='{"ok": true}', next_job=None
        )
        assert settled.job.status is JobStatus.COMPLETED
        assert settled.job.output == '{"ok": true}'
        assert settled.revoked_lease is None and settled.next_job is None
        chain = await state_adapter.get_chain(tx=None, chain_id=job.chain_id)
        assert chain is not None and chain.status is JobStatus.COMPLETED
        assert chain.output == '{"ok": true}'

    @pytest.mark.asyncio
    async def test_settle_twice_raises(self, state_adapter: StateAdapterAny) -> None:
        job = await create_one(state_adapter)
        await state_adapter.settle_job(tx=None, job_id=job.id, output="1", next_job=None)
        with pytest.raises(ChainEndedError):
            await state_adapter.settle_job(tx=None, job_id=job.id, output="2", next_job=None)
        stored = await state_adapter.get_job(tx=None, job_id=job.id)
        assert stored is not None and stored.output == "1"
        with pytest.raises(JobNotFoundError):
            await state_adapter.settle_job(tx=None, job_id=new_job().id, output="1", next_job=None)

    @pytest.mark.asyncio
    async def test_settle_with_continuation_creates_the_next_job(
        self, state_adapter: StateAdapterAny
    ) -> None:
        job = await create_one(state_adapter)
        follow = next_job(job, "conformance:after")
        settled = await state_adapter.settle_job(
            tx=None, job_id=job.id, output=None, next_job=follow
        )
        assert settled.job.next_job_id == follow.id and settled.job.output is None
        assert settled.next_job is not None and settled.next_job.id == follow.id
        acquired = await acquire_one(state_adapter, "conformance:after")
        assert acquired.id == follow.id

    @pytest.mark.asyncio
    async def test_settle_running_job_revokes_its_lease(
        self, state_adapter: StateAdapterAny
    ) -> None:
        job = await running_job(state_adapter)
        settled = await state_adapter.settle_job(tx=None, job_id=job.id, output="7", next_job=None)
        assert settled.revoked_lease == job.lease
        with pytest.raises(LeaseLostError):
            await state_adapter.complete_job(tx=None, lease=job.lease, output="8")
        stored = await state_adapter.get_job(tx=None, job_id=job.id)
        assert stored is not None and stored.output == "7" and stored.leased_by is None

    @pytest.mark.asyncio
    async def test_rolled_back_settle_leaves_the_job_open(
        self, state_adapter: StateAdapterAny
    ) -> None:
        job = await create_one(state_adapter)
        with pytest.raises(RuntimeError):
            async with state_adapter.transaction() as tx:
                await state_adapter.settle_job(tx=tx, job_id=job.id, output="1", next_job=None)
                raise RuntimeError("roll back")
        assert await state_adapter.get_job(tx=None, job_id=job.id) == job

    # -- purge_chains -----------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_purge_deletes_only_chains_ended_before_with_the_statuses(
        self, state_adapter: StateAdapterAny
    ) -> None:
        done = await running_job(state_adapter, new_job("purge-done"))
        await state_adapter.complete_job(tx=None, lease=done.lease, output="1")
        failed = await running_job(state_adapter, new_job("purge-failed"))
        await state_adapter.fail_job(tx=None, lease=failed.lease, error=_ERROR)
        open_job = await create_one(state_adapter, new_job("purge-open"))
        stored = await state_adapter.get_job(tx=None, job_id=done.id)
        assert stored is not None and stored.completed_at is not None
        before_end = stored.completed_at - timedelta(seconds=1)
        assert (
            await state_adapter.purge_chains(
                tx=None, ended_before=before_end, statuses=[JobStatus.COMPLETED], limit=10
            )
            == 0
        )
        later = stored.completed_at + timedelta(hours=1)
        deleted = await state_adapter.purge_chains(
            tx=None, ended_before=later, statuses=[JobStatus.COMPLETED], limit=10
        )
        assert deleted == 1
        assert await state_adapter.get_job(tx=None, job_id=done.id) is None
        assert await state_adapter.get_job(tx=None, job_id=failed.id) is not None
        assert await state_adapter.get_job(tx=None, job_id=open_job.id) is not None

    @pytest.mark.asyncio
    async def test_purge_deletes_whole_chains_in_batches(
        self, state_adapter: StateAdapterAny
    ) -> None:
        ended = []
        for _ in range(3):
            first = await running_job(state_adapter)
            second = await state_adapter.continue_job(
                tx=None, lease=first.lease, next_job=next_job(first, "purge-batch:second")
            )
            lease = (await acquire_one(state_adapter, "purge-batch:second")).lease
            await state_adapter.complete_job(tx=None, lease=lease, output="1")
            ended.append((first, second))
        done = await state_adapter.get_job(tx=None, job_id=ended[-1][1].id)
        assert done is not None and done.completed_at is not None
        cutoff = done.completed_at + timedelta(hours=1)
        statuses = [JobStatus.COMPLETED]
        first_batch = await state_adapter.purge_chains(
            tx=None, ended_before=cutoff, statuses=statuses, limit=2
        )
        assert first_batch == 2
        rest = await state_adapter.purge_chains(
            tx=None, ended_before=cutoff, statuses=statuses, limit=2
        )
        assert rest == 1
        for first, second in ended:
            assert await state_adapter.get_job(tx=None, job_id=first.id) is None
            assert await state_adapter.get_job(tx=None, job_id=second.id) is None
