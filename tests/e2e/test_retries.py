"""Failures: exponential backoff between attempts, failing for good after
``max_attempts`` or on a non-retryable error with the error readable, and a
handler rescheduling itself without spending an attempt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

import queuert
from queuert import (
    ChainFailedError,
    Job,
    JobContext,
    JobError,
    JobRecord,
    JobStatus,
    Lease,
    NonRetryableError,
    RetryPolicy,
    ValidationError,
)
from queuert.instrumented import InstrumentedState
from queuert.metrics import Metrics
from tests.e2e.backends import Backend
from tests.e2e.fixtures_inprocess import make_worker, open_app, wait_until

POLICY = RetryPolicy(max_attempts=4, initial_delay_ms=40, max_delay_ms=120, multiplier=2, jitter=0)


@dataclass
class Task:
    name: str


@dataclass
class Outcome:
    attempt: int


flaky_chain = queuert.chain("e2e-retries", input=Task, output=Outcome, retry=POLICY)


class Flaky(Exception):
    """The handler's own failure."""


class RecordingState(InstrumentedState[Any]):
    """The backend's adapter, keeping every record a reschedule left behind: the
    job as it was right after each failed attempt."""

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend.state, Metrics())
        self.rescheduled: list[JobRecord] = []

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


def ms(delta: timedelta) -> float:
    return delta.total_seconds() * 1000


async def test_backoff_grows_then_the_job_fails_for_good(backend: Backend) -> None:
    spy = RecordingState(backend)
    notify = queuert.InProcessNotifyAdapter()
    app: queuert.Queuert[Any] = queuert.Queuert(state=spy, notify=notify, chains=[flaky_chain])
    acquired: list[JobRecord] = []
    worker = make_worker(app, poll_interval=0.02)

    @worker.handler(flaky_chain)
    async def handle(job: Job[Task], ctx: JobContext[Any, Outcome]) -> Outcome:
        acquired.append(job.record)
        raise Flaky(f"{job.input.name} broke on attempt {job.attempt}")

    try:
        async with worker:
            handle_ = await app.enqueue_job_chain(None, flaky_chain, Task("resize"))
            with pytest.raises(ChainFailedError) as failed:
                await app.wait_for_chain(handle_, timeout=5.0)
    finally:
        await notify.close()

    assert failed.value.status == "failed"
    assert failed.value.chain_id == handle_.id
    assert [r.attempt for r in acquired] == [1, 2, 3, 4]

    # After attempt n the job waits initial * 2 ** (n - 1), capped at max_delay_ms.
    waits = [ms(r.scheduled_at - r.updated_at) for r in spy.rescheduled]
    assert waits == pytest.approx([40, 80, 120], abs=1)
    assert all(POLICY.initial_delay_ms - 1 <= w <= POLICY.max_delay_ms + 1 for w in waits)
    assert [(r.status, r.attempt, r.leased_by) for r in spy.rescheduled] == [
        (JobStatus.PENDING, n, None) for n in (1, 2, 3)
    ]
    # No attempt started before its delay was over (both times by the store's clock).
    for failed_at, next_run in zip(spy.rescheduled, acquired[1:], strict=True):
        assert (
            ms(next_run.updated_at - failed_at.updated_at)
            >= ms(failed_at.scheduled_at - failed_at.updated_at) - 1
        )
    # Each failure was recorded before the next attempt ran.
    assert [r.error.message if r.error else None for r in spy.rescheduled] == [
        f"resize broke on attempt {n}" for n in (1, 2, 3)
    ]

    job = await app.get_job(handle_.id)
    chain = await app.get_chain(handle_.id)
    assert job is not None and chain is not None
    assert (job.status, chain.status) == (JobStatus.FAILED, JobStatus.FAILED)
    assert (job.attempt, job.max_attempts) == (4, 4)
    assert job.completed_at is not None and job.leased_by is None
    assert job.error is not None and chain.error == job.error
    assert job.error.type == f"{Flaky.__module__}.Flaky"
    assert job.error.message == "resize broke on attempt 4"
    assert job.error.traceback is not None
    assert "Flaky: resize broke on attempt 4" in job.error.traceback
    assert "raise Flaky" in job.error.traceback
    assert failed.value.error == job.error


async def test_non_retryable_error_fails_at_once(backend: Backend) -> None:
    async with open_app(backend, [flaky_chain]) as app:
        worker = make_worker(app)
        runs: list[int] = []

        class BadRequest(NonRetryableError):
            pass

        @worker.handler(flaky_chain)
        async def handle(job: Job[Task], ctx: JobContext[Any, Outcome]) -> Outcome:
            runs.append(job.attempt)
            raise BadRequest(f"{job.input.name!r} cannot be processed")

        async with worker:
            handle_ = await app.enqueue_job_chain(None, flaky_chain, Task("corrupt.png"))
            with pytest.raises(ChainFailedError):
                await app.wait_for_chain(handle_, timeout=5.0)

    assert runs == [1]
    job = await app.get_job(handle_.id)
    assert job is not None and job.status is JobStatus.FAILED and job.attempt == 1
    assert job.error is not None
    assert job.error.type.endswith("BadRequest")
    assert job.error.message == "'corrupt.png' cannot be processed"


async def test_long_errors_are_truncated(backend: Backend) -> None:
    async with open_app(backend, [flaky_chain]) as app:
        worker = make_worker(app)

        @worker.handler(flaky_chain)
        async def handle(job: Job[Task], ctx: JobContext[Any, Outcome]) -> Outcome:
            raise NonRetryableError("x" * 50_000)

        async with worker:
            handle_ = await app.enqueue_job_chain(None, flaky_chain, Task("big"))
            with pytest.raises(ChainFailedError):
                await app.wait_for_chain(handle_, timeout=5.0)

    chain = await app.get_chain(handle_.id)
    assert chain is not None and chain.error is not None
    assert 0 < len(chain.error.message) <= 2_000
    assert chain.error.traceback is not None and 0 < len(chain.error.traceback) <= 8_000
    # The end of a traceback (the exception line) is what matters; it is kept.
    assert chain.error.traceback.rstrip().endswith("x")


async def test_reschedule_after_runs_again_without_spending_an_attempt(backend: Backend) -> None:
    async with open_app(backend, [flaky_chain]) as app:
        worker = make_worker(app, poll_interval=0.02)
        runs: list[JobRecord] = []

        @worker.handler(flaky_chain)
        async def handle(job: Job[Task], ctx: JobContext[Any, Outcome]) -> Outcome:
            runs.append(job.record)
            if len(runs) == 1:
                await ctx.reschedule(after=timedelta(milliseconds=250))
            return Outcome(job.attempt)

        async with worker:
            handle_ = await app.enqueue_job_chain(None, flaky_chain, Task("later"))
            assert await app.wait_for_chain(handle_, timeout=5.0) == Outcome(1)

    first, second = runs
    assert (first.attempt, second.attempt) == (1, 1)
    # Due 250 ms after the reschedule, which came after the first lease was taken.
    assert ms(second.scheduled_at - first.updated_at) >= 250
    assert second.updated_at >= second.scheduled_at
    assert second.error is None
    assert app.metrics.get("jobs.rescheduled") == 1
    assert app.metrics.get("jobs.retried") == 0


async def test_reschedule_at_a_given_time(backend: Backend) -> None:
    async with open_app(backend, [flaky_chain]) as app:
        worker = make_worker(app, poll_interval=0.02)
        runs: list[JobRecord] = []
        wanted: list[datetime] = []

        @worker.handler(flaky_chain)
        async def handle(job: Job[Task], ctx: JobContext[Any, Outcome]) -> Outcome:
            runs.append(job.record)
            if len(runs) == 1:
                # A time by the store's clock: the moment the lease was taken, plus 300 ms.
                wanted.append(job.record.updated_at + timedelta(milliseconds=300))
                await ctx.reschedule(at=wanted[0])
            return Outcome(job.attempt)

        async with worker:
            handle_ = await app.enqueue_job_chain(None, flaky_chain, Task("at"))
            pending = await _wait_pending_again(app, handle_.id)
            assert pending.attempt == 0
            assert await app.wait_for_chain(handle_, timeout=5.0) == Outcome(1)

    second = runs[1]
    assert second.scheduled_at == pytest.approx(wanted[0], abs=timedelta(milliseconds=1))
    assert second.updated_at >= second.scheduled_at
    assert second.attempt == 1


async def _wait_pending_again(app: queuert.Queuert[Any], job_id: str) -> JobRecord:
    """The job once its handler put it back to pending for later, attempt refunded."""

    async def probe() -> JobRecord | None:
        record = await app.get_job(job_id)
        rescheduled = (
            record is not None
            and record.status is JobStatus.PENDING
            and record.attempt == 0
            and record.scheduled_at > record.created_at + timedelta(milliseconds=200)
        )
        return record if rescheduled else None

    return await wait_until(probe, what="the job to be rescheduled")


# -- the policy itself -----------------------------------------------------------


def test_delay_without_jitter_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(initial_delay_ms=100, max_delay_ms=1_000, multiplier=2, jitter=0)
    assert [policy.delay_ms(n) for n in range(1, 8)] == [100, 200, 400, 800, 1000, 1000, 1000]


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 10, 30])
def test_jitter_stays_within_its_bounds(attempt: int) -> None:
    policy = RetryPolicy(initial_delay_ms=100, max_delay_ms=1_000, multiplier=2, jitter=0.5)
    base = min(1_000, 100 * 2 ** (attempt - 1))
    low = policy.delay_ms(attempt, rand=lambda: 0.0)
    high = policy.delay_ms(attempt, rand=lambda: 1.0)
    middle = policy.delay_ms(attempt, rand=lambda: 0.5)
    assert low == int(base * 0.5)
    assert high == min(1_000, int(base * 1.5))
    assert middle == base
    assert 0 <= low <= middle <= high <= policy.max_delay_ms


def test_zero_initial_delay_retries_at_once() -> None:
    assert RetryPolicy(initial_delay_ms=0, jitter=0.3).delay_ms(5, rand=lambda: 1.0) == 0


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"max_attempts": 0}, "0"),
        ({"max_attempts": -2}, "-2"),
        ({"max_attempts": 2.5}, "2.5"),
        ({"initial_delay_ms": -1}, "-1"),
        ({"initial_delay_ms": 500, "max_delay_ms": 100}, "100"),
        ({"multiplier": 0.5}, "0.5"),
        ({"jitter": 1.5}, "1.5"),
        ({"jitter": -0.1}, "-0.1"),
    ],
)
def test_invalid_policy_is_rejected_naming_the_value(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError) as raised:
        RetryPolicy(**options)
    message = str(raised.value)
    assert named in message
    assert next(iter(options)) in message
