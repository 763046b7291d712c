"""Returning a running job to pending: delay, absolute time, refunds, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from queuert.conformance.support import (
    LONG_LEASE_MS,
    OWNER,
    PAST,
    QUEUE,
    StateAdapterAny,
    acquire_one,
    assert_near,
    assert_utc,
    running_job,
    slack,
    tolerance,
)
from queuert.errors import LeaseLostError
from queuert.records import JobError, JobStatus

ERROR = JobError(type="TimeoutError", message="upstream timed out", traceback="Traceback ...")


class RescheduleCases:
    @pytest.mark.asyncio
    async def test_reschedule_with_delay(self, state_adapter: StateAdapterAny) -> None:
        job = await running_job(state_adapter)
        pending = await state_adapter.reschedule_job(
            tx=None, lease=job.lease, error=ERROR, delay_ms=60_000
        )
        assert pending.status is JobStatus.PENDING
        assert pending.error == ERROR
        assert pending.attempt == 1
        assert pending.leased_by is None
        assert pending.leased_until is None
        assert pending.completed_at is None
        assert_near(
            pending.scheduled_at,
            pending.updated_at + timedelta(seconds=60),
            slack(state_adapter),
        )
        assert_utc(pending.scheduled_at, pending.updated_at)
        assert await state_adapter.get_job(tx=None, job_id=job.id) == pending
        acquired = await state_adapter.acquire_jobs(
            tx=None, queues=[QUEUE], limit=1, owner=OWNER, lease_ms=LONG_LEASE_MS
        )
        assert acquired == []

    @pytest.mark.asyncio
    async def test_reschedule_to_an_absolute_time(self, state_adapter: StateAdapterAny) -> None:
        job = await running_job(state_adapter)
        when = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
        pending = await state_adapter.reschedule_job(
            tx=None, lease=job.lease, error=None, scheduled_at=when
        )
        assert_near(pending.scheduled_at, when, tolerance(state_adapter))
        assert pending.status is JobStatus.PENDING

    @pytest.mark.asyncio
    async def test_reschedule_time_wins_over_delay(self, state_adapter: StateAdapterAny) -> None:
        job = await running_job(state_adapter)
        pending = await state_adapter.reschedule_job(
            tx=None, lease=job.lease, error=None, delay_ms=3_600_000, scheduled_at=PAST
        )
        assert_near(pending.scheduled_at, PAST, tolerance(state_adapter))
        again = await acquire_one(state_adapter)
        assert again.id == job.id

    @pytest.mark.asyncio
    async def test_reschedule_without_delay_is_due_now(
        self, state_adapter: StateAdapterAny
    ) -> None:
        job = await running_job(state_adapter)
        await state_adapter.reschedule_job(tx=None, lease=job.lease, error=ERROR)
        again = await acquire_one(state_adapter, owner="worker-2")
        assert again.id == job.id
        assert again.attempt == 2
        assert again.error == ERROR

    @pytest.mark.asyncio
    async def test_refunded_attempt_is_not_counted(self, state_adapter: StateAdapterAny) -> None:
        job = await running_job(state_adapter)
        pending = await state_adapter.reschedule_job(
            tx=None, lease=job.lease, error=None, refund_attempt=True
        )
        assert pending.attempt == 0
        again = await acquire_one(state_adapter)
        assert again.attempt == 1

    @pytest.mark.asyncio
    async def test_reschedule_replaces_the_error(self, state_adapter: StateAdapterAny) -> None:
        job = await running_job(state_adapter)
        await state_adapter.reschedule_job(tx=None, lease=job.lease, error=ERROR)
        job = await acquire_one(state_adapter)
        other = JobError(type="KeyError", message="'x'")
        pending = await state_adapter.reschedule_job(tx=None, lease=job.lease, error=other)
        assert pending.error == other
        job = await acquire_one(state_adapter)
        cleared = await state_adapter.reschedule_job(tx=None, lease=job.lease, error=None)
        assert cleared.error is None

    @pytest.mark.asyncio
    async def test_rescheduled_chain_is_pending_with_the_error(
        self, state_adapter: StateAdapterAny
    ) -> None:
        job = await running_job(state_adapter)
        await state_adapter.reschedule_job(tx=None, lease=job.lease, error=ERROR, delay_ms=60_000)
        chain = await state_adapter.get_chain(tx=None, chain_id=job.chain_id)
        assert chain is not None
        assert chain.status is JobStatus.PENDING
        assert chain.error == ERROR
        assert chain.completed_at is None

    @pytest.mark.asyncio
    async def test_old_lease_is_void_after_reschedule(self, state_adapter: StateAdapterAny) -> None:
        job = await running_job(state_adapter)
        await state_adapter.reschedule_job(tx=None, lease=job.lease, error=None)
        again = await acquire_one(state_adapter, owner=job.lease.owner)
        # Same owner, new attempt: the lease of the first attempt no longer fits.
        assert again.lease != job.lease
        with pytest.raises(LeaseLostError):
            await state_adapter.complete_job(tx=None, lease=job.lease, output="1")
        done = await state_adapter.complete_job(tx=None, lease=again.lease, output="2")
        assert done.status is JobStatus.COMPLETED and done.output == "2"
