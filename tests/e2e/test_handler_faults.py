"""Faults of handlers and of the worker's own writes: a cancellation or other
BaseException a handler raises is a failed attempt (only the worker's own
cancellations release a job); stop returns even when a handler ignores
cancellation; an acquire that keeps failing backs off and is logged once; an
error that cannot be stored as it is is sanitised or replaced, never left to the
lease's expiry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

import queuert
from queuert import (
    AdapterError,
    ChainFailedError,
    Job,
    JobContext,
    JobError,
    JobRecord,
    JobStatus,
    Lease,
    NonRetryableError,
    RetryPolicy,
)
from queuert.instrumented import InstrumentedState
from queuert.job_errors import MESSAGE_LIMIT, UNRECORDABLE_TYPE
from queuert.metrics import Metrics
from tests.e2e.backends import Backend
from tests.e2e.fixtures_inprocess import make_worker, open_app, wait_for_event, wait_until

FAST = RetryPolicy(max_attempts=3, initial_delay_ms=10, max_delay_ms=20, jitter=0)


@dataclass
class Task:
    name: str


@dataclass
class Done:
    attempt: int


faulty = queuert.chain("e2e-faulty", input=Task, output=Done, retry=FAST)
once = queuert.chain("e2e-faulty-once", input=Task, output=Done, retry=RetryPolicy(max_attempts=1))


class Escape(BaseException):
    """Neither an Exception nor an interpreter exit."""


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


class Spy(InstrumentedState[Any]):
    """The backend's adapter with faults switched on and off by the test."""

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend.state, Metrics())
        self.acquire_down = False
        self.failed_acquires: list[float] = []
        self.refuse_error: Callable[[JobError], bool] = lambda error: False
        self.rescheduled: list[JobRecord] = []

    async def acquire_jobs(
        self, *, tx: Any, queues: Any, limit: int, owner: str, lease_ms: int
    ) -> list[JobRecord]:
        if self.acquire_down:
            self.failed_acquires.append(asyncio.get_running_loop().time())
            raise AdapterError("cannot execute UPDATE in a read-only transaction")
        return await super().acquire_jobs(
            tx=tx, queues=queues, limit=limit, owner=owner, lease_ms=lease_ms
        )

    async def reschedule_job(
        self,
        *,
        tx: Any,
        lease: Lease,
        error: JobError | None,
        delay_ms: int = 0,
        scheduled_at: datetime | None = None,
        refund_attempt: bool = False,
    ) -> JobRecord:
        if error is not None and self.refuse_error(error):
            raise AdapterError("the database refused the error's text")
        record = await super().reschedule_job(
            tx=tx,
            lease=lease,
            error=error,
            delay_ms=delay_ms,
            scheduled_at=scheduled_at,
            refund_attempt=refund_attempt,
        )
        self.rescheduled.append(record)
        return record


async def test_a_cancellation_the_handler_did_not_cause_by_the_worker_fails_the_attempt(
    backend: Backend,
) -> None:
    runs: list[int] = []
    async with open_app(backend, [faulty]) as app:
        worker = make_worker(app, poll_interval=0.02)

        @worker.handler(faulty)
        async def handle(job: Job[Task], ctx: JobContext[Any, Done]) -> Done:
            runs.append(job.attempt)
            other = asyncio.ensure_future(asyncio.sleep(60))
            other.cancel()  # someone else's task, cancelled by someone else
            await other
            return Done(job.attempt)

        async with worker:
            handle_ = await app.enqueue_job_chain(None, faulty, Task("a"))
            with pytest.raises(ChainFailedError):
                await app.wait_for_chain(handle_, timeout=5.0)

    assert runs == [1, 2, 3]
    job = await app.get_job(handle_.id)
    assert job is not None and job.status is JobStatus.FAILED
    assert job.error is not None and job.error.type == "asyncio.exceptions.CancelledError"


async def test_a_base_exception_escaping_the_handler_fails_the_attempt(backend: Backend) -> None:
    async with open_app(backend, [once]) as app:
        worker = make_worker(app)

        @worker.handler(once)
        async def handle(job: Job[Task], ctx: JobContext[Any, Done]) -> Done:
            raise Escape("out of band")

        async with worker:
            handle_ = await app.enqueue_job_chain(None, once, Task("b"))
            with pytest.raises(ChainFailedError) as failed:
                await app.wait_for_chain(handle_, timeout=5.0)

    assert isinstance(failed.value.error, JobError)
    assert failed.value.error.type.endswith("Escape")
    assert failed.value.error.message == "out of band"


async def test_stop_gives_up_on_a_handler_that_ignores_cancellation(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    started = asyncio.Event()
    let_go = asyncio.Event()
    ended = asyncio.Event()
    async with open_app(backend, [faulty]) as app:
        worker = make_worker(app, lease_ms=60_000)

        @worker.handler(faulty)
        async def handle(job: Job[Task], ctx: JobContext[Any, Done]) -> Done:
            started.set()
            try:
                while not let_go.is_set():
                    try:
                        await asyncio.sleep(0.01)
                    except asyncio.CancelledError:
                        continue  # the handler's bug: it swallows its cancellation
                raise NonRetryableError("let go")
            finally:
                ended.set()

        await worker.start()
        try:
            handle_ = await app.enqueue_job_chain(None, faulty, Task("stuck"))
            await wait_for_event(started, what="the handler to start")
            with caplog.at_level(logging.ERROR, logger="queuert.worker"):
                async with asyncio.timeout(5):
                    await worker.stop(timeout=0.05)
            job = await app.get_job(handle_.id)
        finally:
            let_go.set()
            await wait_for_event(ended, what="the stuck handler to end")

    assert job is not None and job.status is JobStatus.RUNNING  # left to expire
    gave_up = [r.getMessage() for r in caplog.records if "gave up" in r.getMessage()]
    assert len(gave_up) == 1 and handle_.id in gave_up[0]


async def test_a_failing_acquire_backs_off_and_is_logged_once_with_its_recovery(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    spy = Spy(backend)
    spy.acquire_down = True
    app: queuert.Queuert[Any] = queuert.Queuert(state=spy, chains=[faulty])
    worker = make_worker(app, poll_interval=0.02)

    @worker.handler(faulty)
    async def handle(job: Job[Task], ctx: JobContext[Any, Done]) -> Done:
        return Done(job.attempt)

    with caplog.at_level(logging.DEBUG, logger="queuert.worker"):
        async with worker:
            await wait_until(lambda: _true(len(spy.failed_acquires) >= 6), what="six failures")
            spy.acquire_down = False
            handle_ = await app.enqueue_job_chain(None, faulty, Task("after the outage"))
            assert await app.wait_for_chain(handle_, timeout=5.0) == Done(1)

    about_acquiring = [
        r for r in caplog.records if r.levelno >= logging.WARNING and "acquiring" in r.getMessage()
    ]
    failures = len(spy.failed_acquires)
    assert [r.levelno for r in about_acquiring] == [logging.WARNING, logging.WARNING]
    assert f"after {failures} failed tries" in about_acquiring[1].getMessage()
    # Each wait is at least the poll interval doubled per failure (capped at 32 times).
    gaps = [b - a for a, b in zip(spy.failed_acquires, spy.failed_acquires[1:], strict=False)]
    for n, gap in enumerate(gaps):
        assert gap >= 0.02 * min(2**n, 32) * 0.9, gaps


async def _true(value: bool) -> bool:
    return value


async def test_an_error_text_no_database_can_store_is_sanitised(backend: Backend) -> None:
    async with open_app(backend, [once]) as app:
        worker = make_worker(app)

        @worker.handler(once)
        async def handle(job: Job[Task], ctx: JobContext[Any, Done]) -> Done:
            raise ValueError("nul\x00 and lone \ud800 surrogate" + "x" * 3 * MESSAGE_LIMIT)

        async with worker:
            handle_ = await app.enqueue_job_chain(None, once, Task("c"))
            with pytest.raises(ChainFailedError):
                await app.wait_for_chain(handle_, timeout=5.0)

    job = await app.get_job(handle_.id)
    assert job is not None and job.status is JobStatus.FAILED and job.error is not None
    assert job.error.message.startswith("nul\ufffd and lone \ufffd surrogate")
    assert len(job.error.message) == MESSAGE_LIMIT
    assert job.error.traceback is not None and "\x00" not in job.error.traceback


async def test_an_exception_whose_str_raises_is_recorded_as_such(backend: Backend) -> None:
    async with open_app(backend, [once]) as app:
        worker = make_worker(app)

        @worker.handler(once)
        async def handle(job: Job[Task], ctx: JobContext[Any, Done]) -> Done:
            raise UnprintableError()

        async with worker:
            handle_ = await app.enqueue_job_chain(None, once, Task("d"))
            with pytest.raises(ChainFailedError):
                await app.wait_for_chain(handle_, timeout=5.0)

    job = await app.get_job(handle_.id)
    assert job is not None and job.error is not None
    assert job.error.type.endswith("UnprintableError")
    assert "__str__ raised RuntimeError" in job.error.message
    assert job.error.traceback is not None and "raise UnprintableError()" in job.error.traceback


async def test_an_error_that_cannot_be_recorded_is_replaced_and_the_job_rescheduled(
    backend: Backend,
) -> None:
    spy = Spy(backend)
    spy.refuse_error = lambda error: error.type != UNRECORDABLE_TYPE
    app: queuert.Queuert[Any] = queuert.Queuert(state=spy, chains=[faulty])
    worker = make_worker(app, poll_interval=0.02)  # lease_ms 30 s: expiry would be too late

    @worker.handler(faulty)
    async def handle(job: Job[Task], ctx: JobContext[Any, Done]) -> Done:
        if job.attempt == 1:
            raise ValueError("unstorable")
        return Done(job.attempt)

    async with worker:
        handle_ = await app.enqueue_job_chain(None, faulty, Task("e"))
        assert await app.wait_for_chain(handle_, timeout=5.0) == Done(2)

    (rescheduled,) = spy.rescheduled
    assert rescheduled.error is not None and rescheduled.error.type == UNRECORDABLE_TYPE
    assert "builtins.ValueError" in rescheduled.error.message


class OverflowingPolicy(RetryPolicy):
    """A policy whose delay computation overflows (a huge multiplier to a high power)."""

    def delay_ms(self, attempt: int, rand: Callable[[], float] = lambda: 0.5) -> int:
        raise OverflowError("(34, 'Numerical result out of range')")


async def test_a_retry_delay_that_overflows_falls_back_to_the_longest_delay(
    backend: Backend,
) -> None:
    policy = OverflowingPolicy(max_attempts=2, initial_delay_ms=10, max_delay_ms=10)
    chain = queuert.chain("e2e-faulty-overflow", input=Task, output=Done, retry=policy)
    spy = Spy(backend)
    app: queuert.Queuert[Any] = queuert.Queuert(state=spy, chains=[chain])
    worker = make_worker(app, poll_interval=0.02)

    @worker.handler(chain)
    async def handle(job: Job[Task], ctx: JobContext[Any, Done]) -> Done:
        if job.attempt == 1:
            raise ValueError("first attempt fails")
        return Done(job.attempt)

    async with worker:
        handle_ = await app.enqueue_job_chain(None, chain, Task("f"))
        assert await app.wait_for_chain(handle_, timeout=5.0) == Done(2)

    (rescheduled,) = spy.rescheduled
    assert rescheduled.error is not None and rescheduled.error.message == "first attempt fails"


async def test_sigterm_returns_when_a_handler_ignores_cancellation(backend: Backend) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are installed only in the main thread")
    started = asyncio.Event()
    let_go = asyncio.Event()
    ended = asyncio.Event()
    async with open_app(backend, [faulty]) as app:
        worker = make_worker(app, shutdown_timeout=0.05)

        @worker.handler(faulty)
        async def handle(job: Job[Task], ctx: JobContext[Any, Done]) -> Done:
            started.set()
            try:
                while not let_go.is_set():
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.sleep(0.01)
                raise NonRetryableError("let go")
            finally:
                ended.set()

        running = asyncio.create_task(worker.run())
        try:
            await app.enqueue_job_chain(None, faulty, Task("stuck"))
            await wait_for_event(started, what="the handler to start")
            os.kill(os.getpid(), signal.SIGTERM)
            async with asyncio.timeout(5):
                await running
        finally:
            let_go.set()
            await wait_for_event(ended, what="the stuck handler to end")
            if not running.done():
                await worker.stop(timeout=0.05)
