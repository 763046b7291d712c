"""Concurrency keys of continuations: a job continuing its chain on a step with a
per-key limit carries the key it was given, like a chain's first job.

Cases skip unless the adapter declares ``concurrency_limits``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from queuert.conformance.support import LONG_LEASE_MS, StateAdapterAny, new_job, unique
from queuert.records import JobRecord, Lease


def _lease(job: JobRecord) -> Lease:
    assert job.leased_by is not None
    return Lease(job_id=job.id, owner=job.leased_by, attempt=job.attempt)


class LimitKeyCases:
    @pytest.mark.asyncio
    async def test_a_continuation_keeps_its_concurrency_key(
        self, state_adapter: StateAdapterAny
    ) -> None:
        if not state_adapter.capabilities.concurrency_limits:
            pytest.skip("adapter declares concurrency_limits=False")
        first, step = unique("keyed-first"), unique("keyed-step")
        await state_adapter.create_jobs(tx=None, jobs=[new_job(first), new_job(first)])
        started = await state_adapter.acquire_jobs(
            tx=None, queues=[first], limit=2, owner="worker-1", lease_ms=LONG_LEASE_MS
        )
        assert len(started) == 2
        for job, key in zip(started, ["a", "b"], strict=True):
            follow = replace(
                new_job(step),
                chain_id=job.chain_id,
                chain_name=job.chain_name,
                position=job.position + 1,
                concurrency_key=key,
            )
            await state_adapter.continue_job(tx=None, lease=_lease(job), next_job=follow)
        # Two jobs of the step, of two keys: one per key may run, so both (jobs stored
        # without a key would count as one key).
        taken = await state_adapter.acquire_limited_jobs(
            tx=None,
            queue=step,
            limit=10,
            owner="worker-2",
            lease_ms=LONG_LEASE_MS,
            concurrency_limit=1,
            per_key=True,
        )
        assert len(taken) == 2, f"{len(taken)} jobs of 2 keys taken at one per key"
