"""Blocked jobs: waiting on other chains, unblocking in the transaction of the
last blocker's completion, failing with a failed blocker (capability
``blockers``)."""

from __future__ import annotations

import asyncio

import pytest

from queuert.blockers import BLOCKER_FAILED_TYPE
from queuert.conformance.support import (
    LONG_LEASE_MS,
    OWNER,
    StateAdapterAny,
    acquire_one,
    new_job,
    next_job,
    running_job,
)
from queuert.errors import JobNotFoundError
from queuert.records import JobError, JobRecord, JobStatus

WAITER = "conformance-waiter"
BLOCKER = "conformance-blocker"


def _require_blockers(adapter: StateAdapterAny) -> None:
    if not adapter.capabilities.blockers:
        pytest.skip("the adapter does not declare the `blockers` capability")


async def _blocker(adapter: StateAdapterAny) -> JobRecord:
    """A running job of a new blocker chain (the chain's last job)."""
    return await running_job(adapter, new_job(BLOCKER))


async def _waiter(adapter: StateAdapterAny, *blockers: JobRecord) -> JobRecord:
    (created,) = await adapter.create_blocked_jobs(
        tx=None, jobs=[new_job(WAITER)], blocker_chain_ids=[b.chain_id for b in blockers]
    )
    return created


async def _status(adapter: StateAdapterAny, job: JobRecord) -> JobStatus:
    current = await adapter.get_job(tx=None, job_id=job.id)
    assert current is not None, f"job {job.id} disappeared"
    return current.status


async def _acquire_waiters(adapter: StateAdapterAny) -> list[JobRecord]:
    return await adapter.acquire_jobs(
        tx=None, queues=[WAITER], limit=10, owner=OWNER, lease_ms=LONG_LEASE_MS
    )


class BlockerCases:
    @pytest.mark.asyncio
    async def test_blocked_job_waits_until_its_blocker_completes(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require_blockers(state_adapter)
        blocker = await _blocker(state_adapter)
        waiter = await _waiter(state_adapter, blocker)
        assert waiter.status is JobStatus.BLOCKED
        assert await _acquire_waiters(state_adapter) == []
        assert await state_adapter.time_until_next_job(tx=None, queues=[WAITER]) is None
        await state_adapter.complete_job(tx=None, lease=blocker.lease, output='{"n": 1}')
        assert await _status(state_adapter, waiter) is JobStatus.PENDING
        assert [j.id for j in await _acquire_waiters(state_adapter)] == [waiter.id]

    @pytest.mark.asyncio
    async def test_blocked_job_waits_for_every_blocker(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require_blockers(state_adapter)
        first = await _blocker(state_adapter)
        second = await _blocker(state_adapter)
        waiter = await _waiter(state_adapter, first, second, first)
        await state_adapter.complete_job(tx=None, lease=first.lease, output="1")
        assert await _status(state_adapter, waiter) is JobStatus.BLOCKED
        assert await _acquire_waiters(state_adapter) == []
        await state_adapter.complete_job(tx=None, lease=second.lease, output="2")
        assert await _status(state_adapter, waiter) is JobStatus.PENDING

    @pytest.mark.asyncio
    async def test_a_continued_blocker_chain_has_not_completed(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require_blockers(state_adapter)
        blocker = await _blocker(state_adapter)
        waiter = await _waiter(state_adapter, blocker)
        step = next_job(blocker, f"{BLOCKER}:step")
        await state_adapter.continue_job(tx=None, lease=blocker.lease, next_job=step)
        assert await _status(state_adapter, waiter) is JobStatus.BLOCKED
        last = await acquire_one(state_adapter, step.queue)
        await state_adapter.complete_job(tx=None, lease=last.lease, output='"done"')
        assert await _status(state_adapter, waiter) is JobStatus.PENDING

    @pytest.mark.asyncio
    async def test_completed_blockers_leave_the_job_pending(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require_blockers(state_adapter)
        blocker = await _blocker(state_adapter)
        await state_adapter.complete_job(tx=None, lease=blocker.lease, output="7")
        waiter = await _waiter(state_adapter, blocker)
        assert waiter.status is JobStatus.PENDING
        assert [j.id for j in await _acquire_waiters(state_adapter)] == [waiter.id]

    @pytest.mark.asyncio
    @pytest.mark.parametrize("how", ["fail", "cancel"])
    async def test_a_blocker_that_does_not_complete_fails_the_job(
        self, state_adapter: StateAdapterAny, how: str
    ) -> None:
        _require_blockers(state_adapter)
        blocker = await _blocker(state_adapter)
        if how == "cancel":
            (pending,) = await state_adapter.create_jobs(tx=None, jobs=[new_job(BLOCKER)])
            blocker = pending
        waiter = await _waiter(state_adapter, blocker)
        if how == "fail":
            error = JobError(type="Boom", message="boom")
            await state_adapter.fail_job(tx=None, lease=blocker.lease, error=error)
        else:
            await state_adapter.cancel_chain(tx=None, chain_id=blocker.chain_id)
        current = await state_adapter.get_job(tx=None, job_id=waiter.id)
        assert current is not None and current.status is JobStatus.FAILED
        assert current.error is not None and current.error.type == BLOCKER_FAILED_TYPE
        assert blocker.chain_id in current.error.message
        assert current.completed_at is not None
        chain = await state_adapter.get_chain(tx=None, chain_id=waiter.chain_id)
        assert chain is not None and chain.status is JobStatus.FAILED

    @pytest.mark.asyncio
    async def test_failure_reaches_jobs_blocked_on_a_failed_dependent(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require_blockers(state_adapter)
        blocker = await _blocker(state_adapter)
        middle = await _waiter(state_adapter, blocker)
        (last,) = await state_adapter.create_blocked_jobs(
            tx=None, jobs=[new_job(WAITER)], blocker_chain_ids=[middle.chain_id]
        )
        await state_adapter.fail_job(
            tx=None, lease=blocker.lease, error=JobError(type="Boom", message="boom")
        )
        assert await _status(state_adapter, middle) is JobStatus.FAILED
        current = await state_adapter.get_job(tx=None, job_id=last.id)
        assert current is not None and current.status is JobStatus.FAILED
        assert current.error is not None and middle.chain_id in current.error.message

    @pytest.mark.asyncio
    async def test_a_job_that_runs_however_waits_for_every_blocker_to_end(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require_blockers(state_adapter)
        failing = await _blocker(state_adapter)
        completing = await _blocker(state_adapter)
        (waiter,) = await state_adapter.create_blocked_jobs(
            tx=None,
            jobs=[new_job(WAITER)],
            blocker_chain_ids=[failing.chain_id, completing.chain_id],
            run_on_blocker_failure=True,
        )
        assert waiter.status is JobStatus.BLOCKED
        error = JobError(type="Boom", message="boom")
        await state_adapter.fail_job(tx=None, lease=failing.lease, error=error)
        assert await _status(state_adapter, waiter) is JobStatus.BLOCKED
        await state_adapter.complete_job(tx=None, lease=completing.lease, output="2")
        assert await _status(state_adapter, waiter) is JobStatus.PENDING
        read = await state_adapter.get_blockers(tx=None, job_id=waiter.id)
        assert [b.status for b in read] == [JobStatus.FAILED, JobStatus.COMPLETED]
        (late,) = await state_adapter.create_blocked_jobs(
            tx=None,
            jobs=[new_job(WAITER)],
            blocker_chain_ids=[failing.chain_id],
            run_on_blocker_failure=True,
        )
        assert late.status is JobStatus.PENDING

    @pytest.mark.asyncio
    async def test_an_already_failed_blocker_fails_the_new_job(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require_blockers(state_adapter)
        blocker = await _blocker(state_adapter)
        await state_adapter.fail_job(
            tx=None, lease=blocker.lease, error=JobError(type="Boom", message="boom")
        )
        waiter = await _waiter(state_adapter, blocker)
        assert waiter.status is JobStatus.FAILED
        assert waiter.error is not None and waiter.error.type == BLOCKER_FAILED_TYPE

    @pytest.mark.asyncio
    async def test_a_missing_blocker_raises_and_writes_nothing(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require_blockers(state_adapter)
        blocker = await _blocker(state_adapter)
        missing = new_job().id
        job = new_job(WAITER)
        with pytest.raises(JobNotFoundError, match=missing):
            await state_adapter.create_blocked_jobs(
                tx=None, jobs=[job], blocker_chain_ids=[blocker.chain_id, missing]
            )
        assert await state_adapter.get_job(tx=None, job_id=job.id) is None
        async with state_adapter.transaction() as tx:
            with pytest.raises(JobNotFoundError):
                await state_adapter.create_blocked_jobs(
                    tx=tx, jobs=[job], blocker_chain_ids=[missing]
                )
            assert await state_adapter.get_job(tx=tx, job_id=job.id) is None

    @pytest.mark.asyncio
    async def test_a_rolled_back_completion_keeps_the_job_blocked(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require_blockers(state_adapter)
        blocker = await _blocker(state_adapter)
        waiter = await _waiter(state_adapter, blocker)
        with pytest.raises(RuntimeError):
            async with state_adapter.transaction() as tx:
                await state_adapter.complete_job(tx=tx, lease=blocker.lease, output="1")
                assert await _status_in(state_adapter, tx, waiter) is JobStatus.PENDING
                raise RuntimeError("roll back")
        assert await _status(state_adapter, waiter) is JobStatus.BLOCKED
        await state_adapter.complete_job(tx=None, lease=blocker.lease, output="1")
        assert await _status(state_adapter, waiter) is JobStatus.PENDING

    @pytest.mark.asyncio
    async def test_concurrent_completions_of_the_last_blockers_unblock_once(
        self, state_adapter: StateAdapterAny, second_state_adapter: StateAdapterAny
    ) -> None:
        _require_blockers(state_adapter)
        for _ in range(5):
            first = await _blocker(state_adapter)
            second = await _blocker(state_adapter)
            waiter = await _waiter(state_adapter, first, second)
            await asyncio.gather(
                state_adapter.complete_job(tx=None, lease=first.lease, output="1"),
                second_state_adapter.complete_job(tx=None, lease=second.lease, output="2"),
            )
            assert await _status(state_adapter, waiter) is JobStatus.PENDING
            assert [j.id for j in await _acquire_waiters(state_adapter)] == [waiter.id]
            assert await _acquire_waiters(second_state_adapter) == []

    @pytest.mark.asyncio
    async def test_a_blocker_completing_while_the_job_is_created_is_not_missed(
        self, state_adapter: StateAdapterAny, second_state_adapter: StateAdapterAny
    ) -> None:
        _require_blockers(state_adapter)
        if not state_adapter.capabilities.concurrent_transactions:
            pytest.skip("the adapter does not declare `concurrent_transactions`")
        blocker = await _blocker(state_adapter)
        completion: asyncio.Task[JobRecord] | None = None
        async with state_adapter.transaction() as tx:
            (waiter,) = await state_adapter.create_blocked_jobs(
                tx=tx, jobs=[new_job(WAITER)], blocker_chain_ids=[blocker.chain_id]
            )
            completion = asyncio.create_task(
                second_state_adapter.complete_job(tx=None, lease=blocker.lease, output="1")
            )
            # Give the completion every chance to commit before this transaction does.
            await asyncio.wait({completion}, timeout=0.3)
        await completion
        assert await _status(state_adapter, waiter) is JobStatus.PENDING

    @pytest.mark.asyncio
    async def test_continue_blocked_job_waits_then_runs(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require_blockers(state_adapter)
        blocker = await _blocker(state_adapter)
        current = await running_job(state_adapter, new_job(WAITER))
        step = next_job(current, f"{WAITER}:after")
        created = await state_adapter.continue_blocked_job(
            tx=None, lease=current.lease, next_job=step, blocker_chain_ids=[blocker.chain_id]
        )
        assert created.id == step.id and created.status is JobStatus.BLOCKED
        previous = await state_adapter.get_job(tx=None, job_id=current.id)
        assert previous is not None and previous.next_job_id == step.id
        await state_adapter.complete_job(tx=None, lease=blocker.lease, output="3")
        assert await _status(state_adapter, created) is JobStatus.PENDING

    @pytest.mark.asyncio
    async def test_blockers_are_read_in_order_with_their_outputs(
        self, state_adapter: StateAdapterAny
    ) -> None:
        _require_blockers(state_adapter)
        blockers = [await _blocker(state_adapter) for _ in range(3)]
        waiter = await _waiter(state_adapter, *reversed(blockers))
        for n, blocker in enumerate(blockers):
            await state_adapter.complete_job(tx=None, lease=blocker.lease, output=f'{{"n": {n}}}')
        read = await state_adapter.get_blockers(tx=None, job_id=waiter.id)
        assert [(b.chain_id, b.output, b.status) for b in read] == [
            (b.chain_id, f'{{"n": {n}}}', JobStatus.COMPLETED)
            for n, b in reversed(list(enumerate(blockers)))
        ]
        assert {b.chain_name for b in read} == {BLOCKER}
        assert await state_adapter.get_blockers(tx=None, job_id=blockers[0].id) == []

    @pytest.mark.asyncio
    async def test_a_hundred_blockers_are_accepted(self, state_adapter: StateAdapterAny) -> None:
        _require_blockers(state_adapter)
        created = await state_adapter.create_jobs(
            tx=None, jobs=[new_job(BLOCKER) for _ in range(100)]
        )
        (waiter,) = await state_adapter.create_blocked_jobs(
            tx=None, jobs=[new_job(WAITER)], blocker_chain_ids=[c.chain_id for c in created]
        )
        assert waiter.status is JobStatus.BLOCKED
        assert len(await state_adapter.get_blockers(tx=None, job_id=waiter.id)) == 100

    @pytest.mark.asyncio
    async def test_dependent_chains_are_listed(self, state_adapter: StateAdapterAny) -> None:
        _require_blockers(state_adapter)
        blocker = await _blocker(state_adapter)
        other = await _blocker(state_adapter)
        jobs = [new_job(WAITER), new_job(WAITER)]
        await state_adapter.create_blocked_jobs(
            tx=None, jobs=jobs, blocker_chain_ids=[blocker.chain_id]
        )
        listed = await state_adapter.list_dependent_chains(
            tx=None, chain_ids=[blocker.chain_id, other.chain_id]
        )
        assert listed == sorted(j.chain_id for j in jobs)
        assert await state_adapter.list_dependent_chains(tx=None, chain_ids=[other.chain_id]) == []
        both = await state_adapter.list_dependent_chains(
            tx=None, chain_ids=[blocker.chain_id, jobs[0].chain_id]
        )
        assert both == [jobs[1].chain_id]


async def _status_in(adapter: StateAdapterAny, tx: object, job: JobRecord) -> JobStatus:
    current = await adapter.get_job(tx=tx, job_id=job.id)
    assert current is not None
    return current.status
