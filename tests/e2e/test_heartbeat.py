"""Leases during long work: heartbeats keep a job from the reaper, and an attempt
that lost its lease (taken over, or reaped) is cancelled and commits nothing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import queuert
from queuert import (
    Continuation,
    EnqueueJob,
    Job,
    JobContext,
    JobRecord,
    JobStatus,
    LeaseLostError,
)
from queuert.records import LEASE_EXPIRED_ERROR
from tests.e2e.backends import Backend
from tests.e2e.fixtures_inprocess import (
    make_worker,
    open_app,
    wait_for_event,
    wait_until,
)


@dataclass
class Work:
    seconds: float


@dataclass
class Done:
    attempt: int


work_chain = queuert.chain("e2e-heartbeat", input=Work, output=Done)

THIEF = "thief-worker"


async def take_over(backend: Backend, job_id: str) -> JobRecord:
    """What another worker does after the job's lease expired and was reaped:
    return the job to pending with the holder's lease, then acquire it. Both in one
    transaction: the job is never pending for others to see, so the holder's
    worker, free again once it finds its lease lost, cannot acquire it first."""
    async with backend.state.transaction() as tx:
        record = await backend.state.get_job(tx=tx, job_id=job_id)
        assert record is not None and record.status is JobStatus.RUNNING
        await backend.state.reschedule_job(tx=tx, lease=record.lease, error=None)
        taken = await backend.state.acquire_jobs(
            tx=tx, queues=[work_chain.name], limit=1, owner=THIEF, lease_ms=60_000
        )
    assert [job.id for job in taken] == [job_id]
    return taken[0]


async def stale_finalize(
    backend: Backend, job: Job[Work], ctx: JobContext[Any, Done], outcome: dict[str, BaseException]
) -> Done | Continuation:
    """Finalize with an application write after the lease was lost: the refusal is
    kept in ``outcome["finalize"]`` and raised on."""

    async def commit(tx: Any, enqueue_job: EnqueueJob[Done]) -> Done:
        await backend.app_write(tx, "stale-finalize")
        return Done(job.attempt)

    try:
        return await ctx.finalize(commit)
    except LeaseLostError as exc:
        outcome["finalize"] = exc
        raise


async def test_heartbeats_keep_a_job_through_several_lease_lengths(backend: Backend) -> None:
    async with open_app(backend, [work_chain]) as app:
        worker = make_worker(app, lease_ms=300, reaper_interval=0.02)

        @worker.handler(work_chain)
        async def handle(job: Job[Work], ctx: JobContext[Any, Done]) -> Done | Continuation:
            await ctx.with_heartbeat(asyncio.sleep(job.input.seconds), interval_ms=100)
            return Done(job.attempt)

        async with worker:
            handle_ = await app.enqueue_job_chain(None, work_chain, Work(1.2))
            done = await app.wait_for_chain(handle_, timeout=5.0)
            reaper_runs = app.metrics.get("state.reap_expired_leases.calls")

        assert done == Done(1)
        # The reaper kept sweeping all along, and never found the job expired.
        assert reaper_runs >= 20
        assert app.metrics.get("jobs.reaped") == 0
        record = await app.get_job(handle_.id)
        assert record is not None
        assert record.status is JobStatus.COMPLETED
        assert record.attempt == 1
        assert record.error is None


async def test_takeover_during_with_heartbeat_cancels_the_work(backend: Backend) -> None:
    async with open_app(backend, [work_chain]) as app:
        worker = make_worker(app, lease_ms=10_000, concurrency=1)
        working = asyncio.Event()
        work_cancelled = asyncio.Event()
        outcome: dict[str, BaseException] = {}
        handler_done = asyncio.Event()

        async def long_work() -> None:
            working.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                work_cancelled.set()
                raise

        @worker.handler(work_chain)
        async def handle(job: Job[Work], ctx: JobContext[Any, Done]) -> Done | Continuation:
            try:
                try:
                    await ctx.with_heartbeat(long_work(), interval_ms=50)
                except LeaseLostError as exc:
                    outcome["heartbeat"] = exc
                return await stale_finalize(backend, job, ctx, outcome)
            finally:
                handler_done.set()

        async with worker:
            handle_ = await app.enqueue_job_chain(None, work_chain, Work(30))
            await wait_for_event(working, what="the work to start")
            await take_over(backend, handle_.id)
            await wait_for_event(handler_done, what="the handler to give up")

        assert work_cancelled.is_set()
        assert isinstance(outcome.get("heartbeat"), LeaseLostError)
        assert isinstance(outcome.get("finalize"), LeaseLostError)
        assert handle_.id in str(outcome["heartbeat"])
        assert await backend.app_writes() == {}
        record = await app.get_job(handle_.id)
        assert record is not None
        assert record.status is JobStatus.RUNNING
        assert record.leased_by == THIEF
        assert record.attempt == 2
        assert app.metrics.get("jobs.lease_lost") == 1


async def test_stale_finalize_after_reap_and_reacquire_commits_nothing(backend: Backend) -> None:
    # No notifier: the reaped holder is not told, and finds out only when it finalizes.
    async with open_app(backend, [work_chain], notify=False) as app:
        worker = make_worker(app, lease_ms=200, concurrency=1, reaper_interval=3600.0)
        started = asyncio.Event()
        resume = asyncio.Event()
        outcome: dict[str, BaseException] = {}
        handler_done = asyncio.Event()

        @worker.handler(work_chain)
        async def handle(job: Job[Work], ctx: JobContext[Any, Done]) -> Done | Continuation:
            started.set()
            await resume.wait()
            try:
                return await stale_finalize(backend, job, ctx, outcome)
            finally:
                handler_done.set()

        async with worker:
            handle_ = await app.enqueue_job_chain(None, work_chain, Work(0))
            await wait_for_event(started, what="the handler to start")

            async def reap() -> list[JobRecord]:
                return await backend.state.reap_expired_leases(tx=None, limit=10)

            reaped = await wait_until(reap, timeout=5.0, what="the lease to expire")
            assert [(r.id, r.status, r.error) for r in reaped] == [
                (handle_.id, JobStatus.PENDING, LEASE_EXPIRED_ERROR)
            ]
            taken = await backend.state.acquire_jobs(
                tx=None, queues=[work_chain.name], limit=1, owner=THIEF, lease_ms=60_000
            )
            assert [job.id for job in taken] == [handle_.id]
            resume.set()
            await wait_for_event(handler_done, what="the stale finalize")

        assert isinstance(outcome.get("finalize"), LeaseLostError)
        assert await backend.app_writes() == {}
        record = await app.get_job(handle_.id)
        assert record is not None
        assert (record.status, record.leased_by, record.attempt) == (JobStatus.RUNNING, THIEF, 2)
        assert record.output is None


async def test_reaped_job_still_running_here_is_cancelled(backend: Backend) -> None:
    async with open_app(backend, [work_chain]) as app:
        worker = make_worker(app, lease_ms=200, concurrency=1, reaper_interval=0.02)
        cancelled = asyncio.Event()
        outcome: dict[str, BaseException] = {}

        @worker.handler(work_chain)
        async def handle(job: Job[Work], ctx: JobContext[Any, Done]) -> Done | Continuation:
            async def commit(tx: Any, enqueue_job: EnqueueJob[Done]) -> Done:
                await backend.app_write(tx, f"attempt-{job.attempt}")
                return Done(job.attempt)

            if job.attempt >= 2:
                # The 200 ms lease is there for the first attempt to be reaped; a loaded
                # machine must not also reap the second one before it finalizes.
                await ctx.heartbeat(lease_ms=30_000)
                return await ctx.finalize(commit)
            try:
                # Works past its lease without heartbeating.
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                # Whatever the abandoned attempt still tries to write is refused.
                try:
                    await ctx.finalize(commit)
                except LeaseLostError as exc:
                    outcome["finalize"] = exc
                raise
            return await ctx.finalize(commit)

        async with worker:
            handle_ = await app.enqueue_job_chain(None, work_chain, Work(30))
            # The reaper returned the job to pending and it ran again, here.
            done = await app.wait_for_chain(handle_, timeout=5.0)

        assert cancelled.is_set()
        assert isinstance(outcome.get("finalize"), LeaseLostError)
        assert done == Done(2)
        assert await backend.app_writes() == {"attempt-2": 1}
        assert app.metrics.get("jobs.reaped") >= 1
        assert app.metrics.get("jobs.lease_lost") >= 1


async def test_heartbeat_reports_the_new_expiry(backend: Backend) -> None:
    async with open_app(backend, [work_chain]) as app:
        worker = make_worker(app, lease_ms=1_000)
        expiries: list[Any] = []

        @worker.handler(work_chain)
        async def handle(job: Job[Work], ctx: JobContext[Any, Done]) -> Done | Continuation:
            expiries.append(await ctx.heartbeat(lease_ms=5_000))
            record = await app.get_job(job.id)
            assert record is not None
            expiries.append(record.leased_until)
            return Done(job.attempt)

        async with worker:
            handle_ = await app.enqueue_job_chain(None, work_chain, Work(0))
            await app.wait_for_chain(handle_, timeout=5.0)

        returned, stored = expiries
        assert returned == stored
        acquired = await app.get_job(handle_.id)
        assert acquired is not None
        # Extended well past the worker's own 1 s lease.
        assert (returned - acquired.created_at).total_seconds() >= 5.0


async def test_lease_lost_signal_about_an_older_attempt_spares_the_current_one(
    backend: Backend,
) -> None:
    # The signal names only the job: after a reap, the worker now holding the job's
    # new attempt may hear about the old one. Its own, valid attempt must go on.
    async with open_app(backend, [work_chain]) as app:
        worker = make_worker(app, lease_ms=60_000, concurrency=1)
        started, release = asyncio.Event(), asyncio.Event()
        cancelled = asyncio.Event()

        @worker.handler(work_chain)
        async def handle(job: Job[Work], ctx: JobContext[Any, Done]) -> Done:
            started.set()
            try:
                await release.wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return Done(job.attempt)

        async with worker:
            handle_ = await app.enqueue_job_chain(None, work_chain, Work(0))
            await wait_for_event(started, what="the handler to start")
            # What the worker does when the signal arrives, awaited to its end so that
            # a wrong cancellation would have happened before the handler is released.
            await worker._on_lease_lost(handle_.id)
            await asyncio.sleep(0)
            release.set()
            done = await app.wait_for_chain(handle_, timeout=5.0)

        assert not cancelled.is_set()
        assert done == Done(1)
