"""Counting jobs by queue and status."""

from __future__ import annotations

import pytest

from queuert.conformance.support import (
    LONG_LEASE_MS,
    OWNER,
    StateAdapterAny,
    new_job,
    unique,
)
from queuert.records import JobStatus


class CountJobsCases:
    @pytest.mark.asyncio
    async def test_count_jobs_counts_each_queue_in_each_asked_status(
        self, state_adapter: StateAdapterAny
    ) -> None:
        first, second = unique("count-a"), unique("count-b")
        jobs = [new_job(first) for _ in range(3)] + [new_job(second) for _ in range(2)]
        await state_adapter.create_jobs(tx=None, jobs=jobs)
        (taken,) = await state_adapter.acquire_jobs(
            tx=None, queues=[first], limit=1, owner=OWNER, lease_ms=LONG_LEASE_MS
        )
        await state_adapter.complete_job(tx=None, lease=taken.lease, output='"done"')
        await state_adapter.acquire_jobs(
            tx=None, queues=[second], limit=1, owner=OWNER, lease_ms=LONG_LEASE_MS
        )
        counts = await state_adapter.count_jobs(
            tx=None, statuses=[JobStatus.PENDING, JobStatus.RUNNING]
        )
        mine = {key: n for key, n in counts.items() if key[0] in (first, second)}
        assert mine == {
            (first, JobStatus.PENDING): 2,
            (second, JobStatus.PENDING): 1,
            (second, JobStatus.RUNNING): 1,
        }
        done = await state_adapter.count_jobs(tx=None, statuses=[JobStatus.COMPLETED])
        assert done.get((first, JobStatus.COMPLETED)) == 1
        assert await state_adapter.count_jobs(tx=None, statuses=[]) == {}
