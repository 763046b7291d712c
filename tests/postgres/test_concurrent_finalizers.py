"""Many jobs finalized at once without a transaction: each call still gets the
outcome of its own job, whether or not the calls share a statement."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from queuert.errors import LeaseLostError
from queuert.records import JobRecord, JobStatus, NewJob
from queuert_postgres import PostgresStateAdapter
from tests.postgres.helpers import continuation, new_job


async def running_jobs(adapter: PostgresStateAdapter, count: int) -> list[JobRecord]:
    await adapter.create_jobs(tx=None, jobs=[new_job() for _ in range(count)])
    jobs = await adapter.acquire_jobs(
        tx=None, queues=["q"], limit=count, owner="w", lease_ms=60_000
    )
    assert len(jobs) == count
    return jobs


def next_of(job: JobRecord, position: int | None = None) -> NewJob:
    """The next job of ``job``'s chain, its input naming ``job``; ``position``
    overrides the next position (to clash on purpose)."""
    next_job = continuation(job, input=f'{{"from": "{job.id}"}}')
    return next_job if position is None else replace(next_job, position=position)


async def test_concurrent_completions_fail_only_the_stale_lease(
    adapter: PostgresStateAdapter,
) -> None:
    jobs = await running_jobs(adapter, 40)
    stale = jobs[7]
    leases = [job.lease for job in jobs]
    leases[7] = replace(stale.lease, attempt=stale.attempt + 1)

    results = await asyncio.gather(
        *(
            adapter.complete_job(tx=None, lease=lease, output=f'{{"n": {i}}}')
            for i, lease in enumerate(leases)
        ),
        return_exceptions=True,
    )

    assert isinstance(results[7], LeaseLostError) and results[7].job_id == stale.id
    for i, (job, result) in enumerate(zip(jobs, results, strict=True)):
        stored = await adapter.get_job(tx=None, job_id=job.id)
        assert stored is not None
        if i == 7:
            assert stored.status is JobStatus.RUNNING
            continue
        assert isinstance(result, JobRecord)
        assert result.id == job.id and result.output == f'{{"n": {i}}}'
        assert stored == result


async def test_the_same_job_completed_twice_at_once_completes_once(
    adapter: PostgresStateAdapter,
) -> None:
    (job,) = await running_jobs(adapter, 1)

    results = await asyncio.gather(
        adapter.complete_job(tx=None, lease=job.lease, output='"first"'),
        adapter.complete_job(tx=None, lease=job.lease, output='"second"'),
        return_exceptions=True,
    )

    assert isinstance(results[0], JobRecord) and results[0].output == '"first"'
    assert isinstance(results[1], LeaseLostError)
    stored = await adapter.get_job(tx=None, job_id=job.id)
    assert stored is not None and stored.output == '"first"'


async def test_concurrent_continuations_fail_only_the_clashing_one(
    adapter: PostgresStateAdapter,
) -> None:
    jobs = await running_jobs(adapter, 20)
    nexts = [next_of(job) for job in jobs]
    # Job 3's chain already has a job at the next position.
    nexts[3] = next_of(jobs[3], position=0)

    results = await asyncio.gather(
        *(
            adapter.continue_job(tx=None, lease=job.lease, next_job=following)
            for job, following in zip(jobs, nexts, strict=True)
        ),
        return_exceptions=True,
    )

    assert isinstance(results[3], LeaseLostError) and results[3].job_id == jobs[3].id
    assert await adapter.get_job(tx=None, job_id=nexts[3].id) is None
    for i, (job, following, result) in enumerate(zip(jobs, nexts, results, strict=True)):
        if i == 3:
            continue
        assert isinstance(result, JobRecord)
        assert (result.id, result.input, result.position) == (following.id, following.input, 1)
        chain = await adapter.get_chain(tx=None, chain_id=job.chain_id)
        assert chain is not None and chain.last_job_id == following.id
        previous = await adapter.get_job(tx=None, job_id=job.id)
        assert previous is not None and previous.next_job_id == following.id


async def test_the_same_job_continued_twice_at_once_continues_once(
    adapter: PostgresStateAdapter,
) -> None:
    (job,) = await running_jobs(adapter, 1)
    first, second = next_of(job), next_of(job)

    results = await asyncio.gather(
        adapter.continue_job(tx=None, lease=job.lease, next_job=first),
        adapter.continue_job(tx=None, lease=job.lease, next_job=second),
        return_exceptions=True,
    )

    assert isinstance(results[0], JobRecord) and results[0].id == first.id
    assert isinstance(results[1], LeaseLostError)
    assert await adapter.get_job(tx=None, job_id=second.id) is None


async def test_concurrent_continuations_keep_each_trace_context(
    adapter: PostgresStateAdapter,
) -> None:
    jobs = await running_jobs(adapter, 20)
    following = [
        replace(next_of(job), trace_context=f'{{"n":"{i}"}}') for i, job in enumerate(jobs)
    ]
    await asyncio.gather(
        *(
            adapter.continue_job(tx=None, lease=job.lease, next_job=nxt)
            for job, nxt in zip(jobs, following, strict=True)
        )
    )
    for nxt in following:
        stored = await adapter.get_job(tx=None, job_id=nxt.id)
        assert stored is not None and stored.trace_context == nxt.trace_context
