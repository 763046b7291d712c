"""The database is unreachable for a few seconds while a job's long work runs under
``with_heartbeat`` with a lease far from expiry: the renewals that fail are
retried, the work is not cancelled and runs once, and the job completes in its
first attempt once the database is back."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiosqlite
import pytest

from queuert import Continuation, EnqueueJob, Job, JobContext, JobStatus
from tests.e2e.backends import app_write
from tests.e2e.processes import TWO_STEP, TWO_STEP_SECOND, Done, Step, job_key
from tests.faults.setups import (
    SETUPS,
    Observed,
    Setup,
    assert_every_chain_completed_once,
    measured,
)

pytestmark = pytest.mark.faults

OUTAGE_S = 2.0
SQLITE_LOCK_S = 4.0
"""SQLite's outage is another connection holding the write lock; it lasts
longer than the PostgreSQL one since a lock is first waited out (the busy
timeout below, and the core's retries of a transient error, about 2.4 s in all)."""
SQLITE_BUSY_TIMEOUT_MS = 500
LEASE_MS = 10_000
HEARTBEAT_MS = 200


@pytest.mark.parametrize("setup", SETUPS, indirect=True)
async def test_work_under_heartbeat_survives_a_short_database_outage(setup: Setup) -> None:
    """PostgreSQL: connections cut and refused for 2 s (LISTEN/NOTIFY too when it
    is the notifier). SQLite: the write lock held by another connection for 4 s.
    Renewals fail meanwhile, but the lease (10 s) never comes near expiry.

    Bound: the chain completes within 10 s of the end of the outage (measured
    on 2 cores: 0.1-0.7 s).
    """
    observed = Observed()
    state_url = setup.state_url
    if setup.name.startswith("sqlite"):
        state_url += f"?busy_timeout_ms={SQLITE_BUSY_TIMEOUT_MS}"
    producer = await setup.app([TWO_STEP])
    app = await setup.app([TWO_STEP], state_url=state_url)
    worker = app.worker(
        concurrency=2, lease_ms=LEASE_MS, poll_interval=0.2, reaper_interval=0.2, worker_id="w"
    )
    work_started = asyncio.Event()
    outage_over = asyncio.Event()
    runs = 0
    cancelled = 0

    async def long_work() -> None:
        nonlocal runs, cancelled
        runs += 1
        work_started.set()
        try:
            await outage_over.wait()
        except asyncio.CancelledError:
            cancelled += 1
            raise

    def observing(
        handle: Any,
    ) -> Any:
        async def observed_handler(job: Job[Step], ctx: JobContext[Any, Done]) -> Any:
            try:
                return await handle(job, ctx)
            except Exception as exc:
                observed.note(exc)
                raise

        return observed_handler

    async def noop(tx: Any) -> None:
        return None

    @worker.handler(TWO_STEP)
    @observing
    async def first(job: Job[Step], ctx: JobContext[Any, Done]) -> Done | Continuation:
        await ctx.claim(noop)
        await ctx.with_heartbeat(long_work(), interval_ms=HEARTBEAT_MS)

        async def commit(tx: Any, enqueue_job: EnqueueJob[Done]) -> Continuation:
            await app_write(tx, job_key(job.chain_id, job.queue), schema=setup.schema)
            return await enqueue_job(TWO_STEP_SECOND, Step(job.input.n))

        return await ctx.finalize(commit)

    @worker.handler(TWO_STEP_SECOND)
    @observing
    async def second(job: Job[Step], ctx: JobContext[Any, Done]) -> Done | Continuation:
        async def commit(tx: Any, enqueue_job: EnqueueJob[Done]) -> Done:
            await app_write(tx, job_key(job.chain_id, job.queue), schema=setup.schema)
            return Done(n=job.input.n, steps=2)

        return await ctx.finalize(commit)

    handle = await observed.call(lambda: producer.enqueue_job_chain(None, TWO_STEP, Step(1)))
    assert handle is not None
    async with worker:
        await asyncio.wait_for(work_started.wait(), timeout=30)
        await _outage(setup, SQLITE_LOCK_S if setup.state_proxy is None else OUTAGE_S)
        outage_over.set()
        over_at = time.monotonic()
        await observed.call(
            lambda: producer.wait_for_chain(handle, timeout=30, poll_interval=0.05), timeout=40
        )
        measured(f"{setup.name}: chain completed after the outage", time.monotonic() - over_at)

    await assert_every_chain_completed_once(setup, observed, [handle.id])
    assert (runs, cancelled) == (1, 0), f"the work ran {runs} times, cancelled {cancelled} times"
    job = await producer.get_job(handle.id)
    assert job is not None
    assert (job.status, job.attempt) == (JobStatus.COMPLETED, 1)


async def _outage(setup: Setup, seconds: float) -> None:
    """Make the database unavailable for ``seconds`` (the fault itself lasts this
    long; nothing is being waited for)."""
    if setup.state_proxy is not None:
        setup.database_down()
        try:
            await asyncio.sleep(seconds)
        finally:
            setup.database_up()
        return
    assert setup.backend.url is not None
    path = setup.backend.url.removeprefix("sqlite:///")
    async with aiosqlite.connect(path) as locker:
        await locker.execute("BEGIN IMMEDIATE")
        try:
            await asyncio.sleep(seconds)
        finally:
            await locker.rollback()
