"""Stopping a worker: in-flight jobs get until the timeout, the rest are cancelled
and released so another worker takes them at once; stop is idempotent; SIGTERM
stops ``run()`` gracefully."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

import queuert
from queuert import Job, JobContext, JobRecord, JobStatus, Queuert
from tests.e2e.backends import Backend
from tests.e2e.fixtures_inprocess import make_worker, wait_for_event
from tests.waiting import eventually


@dataclass
class Chore:
    name: str
    seconds: float


@dataclass
class Finished:
    name: str
    attempt: int


chores = queuert.chain("e2e-lifecycle", input=Chore, output=Finished)

LONG_LEASE_MS = 60_000


class Chores:
    """A handler whose runs the test can watch; a chore sleeps for its seconds."""

    def __init__(self) -> None:
        self.started: dict[str, asyncio.Event] = {}
        self.cancelled: set[str] = set()
        self.runs: list[JobRecord] = []

    def started_event(self, name: str) -> asyncio.Event:
        return self.started.setdefault(name, asyncio.Event())

    async def __call__(self, job: Job[Chore], ctx: JobContext[Any, Finished]) -> Finished:
        self.runs.append(job.record)
        self.started_event(job.input.name).set()
        try:
            await asyncio.sleep(job.input.seconds)
        except asyncio.CancelledError:
            self.cancelled.add(job.input.name)
            raise
        return Finished(job.input.name, job.attempt)


def new_app(backend: Backend, notify: queuert.InProcessNotifyAdapter) -> Queuert[Any]:
    return queuert.Queuert(state=backend.state, notify=notify, chains=[chores])


async def test_stop_finishes_quick_jobs_and_releases_the_rest(backend: Backend) -> None:
    notify = queuert.InProcessNotifyAdapter()
    app = new_app(backend, notify)
    handler = Chores()
    worker = make_worker(app, concurrency=2, lease_ms=LONG_LEASE_MS)
    worker.handler(chores)(handler)
    try:
        await worker.start()
        quick = await app.enqueue_job_chain(None, chores, Chore("quick", 0.2))
        slow = await app.enqueue_job_chain(None, chores, Chore("slow", 30))
        await wait_for_event(handler.started_event("quick"), what="the quick job")
        await wait_for_event(handler.started_event("slow"), what="the slow job")

        began = time.monotonic()
        await worker.stop(timeout=0.6)
        took = time.monotonic() - began
    finally:
        await worker.stop(timeout=0.1)
        await notify.close()

    # The quick job finished within the timeout; stop waited for it, not for 30 s.
    assert 0.1 <= took < 3.0
    done = await app.get_chain(quick.id)
    assert done is not None and done.status is JobStatus.COMPLETED
    assert done.output_value() == {"name": "quick", "attempt": 1}

    assert handler.cancelled == {"slow"}
    released = await app.get_job(slow.id)
    assert released is not None
    assert released.status is JobStatus.PENDING
    assert released.attempt == 0  # the interrupted attempt is not counted
    assert released.leased_by is None and released.leased_until is None
    assert released.error is not None and released.error.type == "WorkerStopped"
    assert worker.id in released.error.message
    assert released.scheduled_at <= released.updated_at  # due at once
    assert worker.active_jobs == 0
    assert app.metrics.get("jobs.released") == 1


async def test_an_idle_worker_takes_a_released_job_at_once(backend: Backend) -> None:
    notify = queuert.InProcessNotifyAdapter()
    first_app, second_app = new_app(backend, notify), new_app(backend, notify)
    first, second = Chores(), Chores()
    stopping = make_worker(first_app, lease_ms=LONG_LEASE_MS)
    stopping.handler(chores)(first)
    # Neither its poll interval nor the 60 s lease can explain a quick pickup.
    idle = make_worker(second_app, lease_ms=LONG_LEASE_MS, poll_interval=30.0)

    @idle.handler(chores)
    async def finish_quickly(job: Job[Chore], ctx: JobContext[Any, Finished]) -> Finished:
        second.runs.append(job.record)
        return Finished(job.input.name, job.attempt)

    try:
        await stopping.start()
        handle = await first_app.enqueue_job_chain(None, chores, Chore("moved", 30))
        await wait_for_event(first.started_event("moved"), what="the first run")
        async with idle:
            await eventually(
                lambda: second_app.metrics.get("worker.acquire_attempts") >= 1,
                message="the second worker to go idle",
            )
            await stopping.stop(timeout=0.05)
            result = await second_app.wait_for_chain(handle, timeout=5.0)
    finally:
        await stopping.stop(timeout=0.1)
        await notify.close()

    assert result == Finished("moved", 1)
    [rerun] = second.runs
    assert rerun.error is not None and rerun.error.type == "WorkerStopped"
    assert rerun.attempt == 1


async def test_stop_is_idempotent(backend: Backend) -> None:
    notify = queuert.InProcessNotifyAdapter()
    app = new_app(backend, notify)
    handler = Chores()
    worker = make_worker(app, lease_ms=LONG_LEASE_MS)
    worker.handler(chores)(handler)
    never_started = make_worker(app)
    never_started.handler(chores)(handler)
    try:
        await worker.start()
        handle = await app.enqueue_job_chain(None, chores, Chore("once", 30))
        await wait_for_event(handler.started_event("once"), what="the job")
        # Two concurrent stops and a later one all return; the job is released once.
        await asyncio.wait_for(
            asyncio.gather(worker.stop(timeout=0.05), worker.stop(timeout=0.05)), 5.0
        )
        await asyncio.wait_for(worker.stop(timeout=0.05), 1.0)
        await asyncio.wait_for(never_started.stop(), 1.0)
        await asyncio.wait_for(never_started.stop(), 1.0)
    finally:
        await notify.close()

    assert handler.cancelled == {"once"}
    assert app.metrics.get("jobs.released") == 1
    record = await app.get_job(handle.id)
    assert record is not None and record.status is JobStatus.PENDING and record.attempt == 0


async def test_sigterm_stops_run_gracefully(backend: Backend) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be installed from the main thread")
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    notify = queuert.InProcessNotifyAdapter()
    app = new_app(backend, notify)
    handler = Chores()
    worker = make_worker(app, lease_ms=LONG_LEASE_MS, shutdown_timeout=3.0)
    worker.handler(chores)(handler)
    running = asyncio.create_task(worker.run())
    try:
        # Only signal once the worker's handler replaced the previous one: the
        # default action would end the test process.
        await eventually(
            lambda: (
                signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, previous[signal.SIGTERM])
                or running.done()
            ),
            message="run() to install its signal handlers",
        )
        assert not running.done()
        handle = await app.enqueue_job_chain(None, chores, Chore("in-flight", 0.3))
        await wait_for_event(handler.started_event("in-flight"), what="the job")
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(running, 5.0)
    finally:
        if not running.done():
            await worker.stop(timeout=0.1)
            await asyncio.gather(running, return_exceptions=True)
        for sig, handler_ in previous.items():
            signal.signal(sig, handler_)
        await notify.close()

    # The job in flight was allowed to finish within the shutdown timeout.
    chain = await app.get_chain(handle.id)
    assert chain is not None and chain.status is JobStatus.COMPLETED
    assert handler.cancelled == set()
    assert worker.active_jobs == 0
