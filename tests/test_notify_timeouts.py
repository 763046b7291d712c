"""A notifier that hangs (a connection that silently drops packets) holds neither the
application's enqueue nor a worker's job slot: publishing is sent on the side and
given up after a timeout, and a wake claim that does not answer counts as a wake."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import queuert
from queuert.ports.notify import ScheduledSignal
from tests.waiting import eventually


@dataclass
class Num:
    n: int


chain = queuert.chain("notify-timeouts", input=Num, output=Num)


class HangingPublishes(queuert.InProcessNotifyAdapter):
    """Delivers subscriptions, but every publish waits forever."""

    async def publish_job_scheduled(self, *, queue: str, count: int) -> None:
        await asyncio.Event().wait()

    async def publish_chain_completed(self, *, chain_id: str) -> None:
        await asyncio.Event().wait()

    async def publish_lease_lost(self, *, job_id: str) -> None:
        await asyncio.Event().wait()


class HangingWakeClaims(queuert.InProcessNotifyAdapter):
    """Publishes and delivers, but a wake claim never answers."""

    async def claim_wake(self, *, signal: ScheduledSignal) -> bool:
        await asyncio.Event().wait()
        return True


def handle(worker: queuert.Worker[Any]) -> None:
    @worker.handler(chain)
    async def run(job: queuert.Job[Num], ctx: queuert.JobContext[Any, Num]) -> Any:
        async def commit(tx: Any, enqueue_job: queuert.EnqueueJob[Num]) -> Num:
            return Num(job.input.n + 1)

        return await ctx.finalize(commit)


async def test_a_hanging_publish_holds_neither_the_enqueue_nor_the_worker() -> None:
    app = queuert.Queuert(
        state=queuert.MemoryStateAdapter(), notify=HangingPublishes(), chains=[chain]
    )
    await app.migrate()
    # One slot: a slot held by its job's publish would keep the second job waiting.
    worker = app.worker(concurrency=1, poll_interval=0.05)
    handle(worker)
    try:
        async with asyncio.timeout(10):
            handles = await app.enqueue_job_chains(None, chain, [Num(1), Num(2)])
            async with worker:
                outputs = [await app.wait_for_chain(h, timeout=10) for h in handles]
        assert outputs == [Num(2), Num(3)]
    finally:
        async with asyncio.timeout(10):
            await app.close()


async def test_a_wake_claim_that_never_answers_counts_as_a_wake() -> None:
    app = queuert.Queuert(
        state=queuert.MemoryStateAdapter(), notify=HangingWakeClaims(), chains=[chain]
    )
    await app.migrate()
    # Polling alone would find the job only after a minute.
    worker = app.worker(concurrency=1, poll_interval=60)
    handle(worker)
    try:
        async with worker:
            # Once the worker has looked and found nothing, it waits for a wake.
            await eventually(lambda: app.metrics.get("state.time_until_next_job.calls") >= 1)
            (handle_,) = await app.enqueue_job_chains(None, chain, [Num(1)])
            assert await app.wait_for_chain(handle_, timeout=20) == Num(2)
    finally:
        async with asyncio.timeout(10):
            await app.close()
