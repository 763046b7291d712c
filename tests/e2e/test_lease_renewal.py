"""``with_heartbeat`` through renewal failures: a failure that passes (the database
briefly unreachable or busy) is retried while the work goes on; only a lost lease,
or the lease running out, cancels the work."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import queuert
from queuert import Job, JobContext, Lease, LeaseLostError, RetryPolicy, TransientStateError
from queuert.instrumented import InstrumentedState
from queuert.metrics import Metrics
from tests.e2e.backends import Backend
from tests.e2e.fixtures_inprocess import make_worker, wait_until


@dataclass
class Work:
    name: str


@dataclass
class Done:
    outcome: str


renewed = queuert.chain("e2e-renewal", input=Work, output=Done, retry=RetryPolicy(max_attempts=1))


class FlakyRenewals(InstrumentedState[Any]):
    """The backend's adapter whose next ``fail_next`` lease renewals fail as a lost
    connection would (after the adapter's own retries gave up)."""

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend.state, Metrics())
        self.fail_next = 0
        self.failures = 0
        self.renewed_after_failures = False

    async def renew_lease(self, *, tx: Any, lease: Lease, lease_ms: int) -> datetime:
        if self.fail_next > 0:
            self.fail_next -= 1
            self.failures += 1
            raise TransientStateError("connection to the database lost")
        expiry = await super().renew_lease(tx=tx, lease=lease, lease_ms=lease_ms)
        self.renewed_after_failures = self.failures > 0
        return expiry


async def test_a_transient_renewal_failure_does_not_cancel_the_work(backend: Backend) -> None:
    spy = FlakyRenewals(backend)
    # More failures in a row than the core's retries of one renewal absorb.
    spy.fail_next = 6
    app: queuert.Queuert[Any] = queuert.Queuert(state=spy, chains=[renewed])
    worker = make_worker(app, lease_ms=5_000)

    async def work() -> str:
        await wait_until(
            lambda: _true(spy.renewed_after_failures), what="a renewal after the failures"
        )
        return "survived"

    @worker.handler(renewed)
    async def handle(job: Job[Work], ctx: JobContext[Any, Done]) -> Done:
        return Done(await ctx.with_heartbeat(work(), interval_ms=50))

    async with worker:
        handle_ = await app.enqueue_job_chain(None, renewed, Work("long"))
        assert await app.wait_for_chain(handle_, timeout=10.0) == Done("survived")
    assert spy.failures == 6


async def test_renewals_failing_until_the_lease_runs_out_cancel_the_work(
    backend: Backend,
) -> None:
    spy = FlakyRenewals(backend)
    spy.fail_next = 1_000_000
    app: queuert.Queuert[Any] = queuert.Queuert(state=spy, chains=[renewed])
    # No reaper: the lease's expiry must be met by with_heartbeat itself.
    worker = make_worker(app, lease_ms=1_000, reaper_interval=3600)
    work_cancelled = asyncio.Event()
    raised: list[BaseException] = []

    async def work() -> str:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            work_cancelled.set()
            raise
        return "never"

    @worker.handler(renewed)
    async def handle(job: Job[Work], ctx: JobContext[Any, Done]) -> Done:
        try:
            return Done(await ctx.with_heartbeat(work(), interval_ms=100))
        except BaseException as exc:
            raised.append(exc)
            raise

    async with worker:
        await app.enqueue_job_chain(None, renewed, Work("doomed"))
        await wait_until(lambda: _true(bool(raised)), what="with_heartbeat to give up")
    assert work_cancelled.is_set()
    assert isinstance(raised[0], LeaseLostError)
    assert "failed renewals" in str(raised[0])


async def _true(value: bool) -> bool:
    return value
