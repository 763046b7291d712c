"""Whose notifications ``with_notify`` holds back, and what a signal that leaves
before its transaction commits costs: collection belongs to the task that opened
the block (a worker started inside it still announces its completed chains), and
a worker woken by a signal whose job it cannot see yet looks again shortly after
instead of sleeping until its next poll."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

import queuert
from queuert import Job, JobContext
from tests.e2e.backends import Backend
from tests.e2e.fixtures_inprocess import caller_transaction, make_worker, open_app, wait_until


@dataclass
class Ping:
    n: int


@dataclass
class Pong:
    n: int


pings = queuert.chain("e2e-notify-scope", input=Ping, output=Pong)


async def test_a_worker_started_inside_with_notify_announces_its_completed_chains(
    backend: Backend,
) -> None:
    count = 20
    async with open_app(backend, [pings]) as app:
        assert app.notify is not None
        completed: set[str] = set()

        async def on_completed(chain_id: str) -> None:
            completed.add(chain_id)

        subscription = await app.notify.subscribe_chain_completed(
            chain_id=None, listener=on_completed
        )
        worker = make_worker(app)

        @worker.handler(pings)
        async def handle(job: Job[Ping], ctx: JobContext[Any, Pong]) -> Pong:
            return Pong(job.input.n)

        try:
            async with app.with_notify(), worker:
                handles = await app.enqueue_job_chains(None, pings, [Ping(n) for n in range(count)])
                ids = {h.id for h in handles}
                # Still inside the block: the worker's signals are not the block's.
                await wait_until(
                    lambda: _true(ids <= completed), what="every chain-completed signal"
                )
        finally:
            await subscription.unsubscribe()


async def test_a_signal_that_leaves_before_the_commit_costs_no_poll_interval(
    backend: Backend,
) -> None:
    if not backend.state.capabilities.concurrent_transactions:
        pytest.skip("the worker's acquire waits for the caller's transaction to end")
    async with open_app(backend, [pings]) as app:
        worker = make_worker(app, poll_interval=60.0)

        @worker.handler(pings)
        async def handle(job: Job[Ping], ctx: JobContext[Any, Pong]) -> Pong:
            return Pong(job.input.n)

        async with worker:
            await wait_until(
                lambda: _true(app.metrics.get("worker.acquire_attempts") >= 1),
                what="the worker's first look",
            )
            looks = app.metrics.get("worker.acquire_attempts")
            async with caller_transaction(backend) as tx:
                # Outside with_notify: the signal leaves now, before the commit.
                handle_ = await app.enqueue_job_chain(tx, pings, Ping(1))
                await wait_until(
                    lambda: _true(app.metrics.get("worker.acquire_attempts") > looks),
                    what="the worker to look while the job is not committed",
                )
            assert await app.wait_for_chain(handle_, timeout=5.0) == Pong(1)


async def _true(value: bool) -> bool:
    await asyncio.sleep(0)
    return value
