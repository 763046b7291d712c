"""Wake hints: one new job wakes about one of eight idle workers, not all eight;
eight new jobs wake all eight.

Each worker has an application of its own, as a worker process would, so its
metrics count only its own database queries. With Redis each also has its own
notify adapter (its own connections, as in separate processes); the in-process
notifier is one bus that all of them share.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import pytest_asyncio

import queuert
from queuert import (
    Continuation,
    EnqueueJob,
    Job,
    JobContext,
    NotifyAdapter,
    ScheduledSignal,
    Subscription,
)
from queuert.ports.notify import IdListener, ScheduledListener
from queuert_redis_notify import from_url as redis_from_url
from tests.e2e.backends import Backend, app_write, make_backend
from tests.e2e.processes import Done, Step
from tests.servers import require_redis
from tests.waiting import eventually

WORKERS = 8
IDLE_POLL_S = 60.0

HERD = queuert.chain("e2e-herd", input=Step, output=Done)


class CountingNotify(NotifyAdapter):
    """A notify adapter as the worker sees it, recording every wake claim's answer."""

    def __init__(self, inner: NotifyAdapter) -> None:
        self.inner = inner
        self.capabilities = inner.capabilities
        self.answers: list[bool] = []

    async def publish_job_scheduled(self, *, queue: str, count: int) -> None:
        await self.inner.publish_job_scheduled(queue=queue, count=count)

    async def publish_chain_completed(self, *, chain_id: str) -> None:
        await self.inner.publish_chain_completed(chain_id=chain_id)

    async def publish_lease_lost(self, *, job_id: str) -> None:
        await self.inner.publish_lease_lost(job_id=job_id)

    async def subscribe_job_scheduled(
        self, *, queues: Sequence[str], listener: ScheduledListener
    ) -> Subscription:
        return await self.inner.subscribe_job_scheduled(queues=queues, listener=listener)

    async def subscribe_chain_completed(
        self, *, chain_id: str | None, listener: IdListener
    ) -> Subscription:
        return await self.inner.subscribe_chain_completed(chain_id=chain_id, listener=listener)

    async def subscribe_lease_lost(
        self, *, job_id: str | None, listener: IdListener
    ) -> Subscription:
        return await self.inner.subscribe_lease_lost(job_id=job_id, listener=listener)

    async def claim_wake(self, *, signal: ScheduledSignal) -> bool:
        answer = await self.inner.claim_wake(signal=signal)
        self.answers.append(answer)
        return answer

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class Herd:
    """Eight worker applications, a producer, and what their handlers saw."""

    backend: Backend
    producer: queuert.Queuert[Any]
    apps: list[queuert.Queuert[Any]]
    notifiers: list[CountingNotify]
    workers: list[queuert.Worker[Any]] = field(default_factory=list)
    together: int = 1
    """How many jobs must run at the same time before any may finish."""
    running: set[str] = field(default_factory=set)
    ran_by: dict[str, str] = field(default_factory=dict)
    all_running: asyncio.Event = field(default_factory=asyncio.Event)

    def queries(self) -> list[int]:
        """Per worker: how many times it asked the database for jobs."""
        return [app.metrics.get("state.acquire_jobs.calls") for app in self.apps]

    def claims(self) -> list[int]:
        return [len(n.answers) for n in self.notifiers]


async def make_notifiers(kind: str) -> tuple[list[NotifyAdapter], NotifyAdapter]:
    """One adapter per worker plus the producer's (Redis), or one shared bus."""
    if kind == "memory":
        bus = queuert.InProcessNotifyAdapter()
        return [bus] * WORKERS, bus
    url = f"{require_redis()}?prefix=e2e-herd-{uuid4().hex}:"
    return [await redis_from_url(url) for _ in range(WORKERS)], await redis_from_url(url)


@pytest_asyncio.fixture(params=["redis", "memory"])
async def herd(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Herd]:
    backend = await make_backend("sqlite", tmp_path)
    adapters, producer_notify = await make_notifiers(request.param)
    notifiers = [CountingNotify(adapter) for adapter in adapters]
    herd = Herd(
        backend=backend,
        producer=queuert.Queuert(state=backend.state, notify=producer_notify, chains=[HERD]),
        apps=[queuert.Queuert(state=backend.state, notify=n, chains=[HERD]) for n in notifiers],
        notifiers=notifiers,
    )
    try:
        for i, app in enumerate(herd.apps):
            worker = app.worker(concurrency=1, poll_interval=IDLE_POLL_S, worker_id=f"w{i}")
            register_herd_handler(worker, herd)
            herd.workers.append(worker)
            await worker.start()
        # Idle: each looked for work once, found none, and now waits.
        await eventually(
            lambda: all(a.metrics.get("state.time_until_next_job.calls") for a in herd.apps),
            timeout=10,
            interval=0.01,
            message="workers never went idle",
        )
        yield herd
    finally:
        for worker in herd.workers:
            await worker.stop(timeout=5)
        for adapter in {id(a): a for a in [*adapters, producer_notify]}.values():
            await adapter.close()
        await backend.close()


def register_herd_handler(worker: queuert.Worker[Any], herd: Herd) -> None:
    @worker.handler(HERD)
    async def handle(job: Job[Step], ctx: JobContext[Any, Done]) -> Done | Continuation:
        assert job.record.leased_by is not None
        herd.ran_by[job.id] = job.record.leased_by
        herd.running.add(job.id)
        if len(herd.running) >= herd.together:
            herd.all_running.set()
        await asyncio.wait_for(herd.all_running.wait(), timeout=10)

        async def commit(tx: Any, enqueue_job: EnqueueJob[Done]) -> Done:
            await app_write(tx, job.id)
            return Done(n=job.input.n, steps=1)

        return await ctx.finalize(commit)


async def commit_jobs(herd: Herd, count: int) -> list[queuert.ChainHandle[Done]]:
    herd.running.clear()
    herd.all_running.clear()
    herd.together = count
    return await herd.producer.enqueue_job_chains(None, HERD, [Step(n) for n in range(count)])


async def test_one_new_job_wakes_at_most_two_of_eight_idle_workers(herd: Herd) -> None:
    queries_before, claims_before = herd.queries(), herd.claims()

    [handle] = await commit_jobs(herd, 1)
    await herd.producer.wait_for_chain(handle, timeout=5, poll_interval=0.05)
    # Every idle worker heard the signal and asked for a share of its wake budget.
    await eventually(
        lambda: all(
            after == before + 1 for after, before in zip(herd.claims(), claims_before, strict=True)
        ),
        timeout=5,
        interval=0.01,
        message="not every idle worker heard the signal",
    )

    woken = [n.answers[-1] for n in herd.notifiers].count(True)
    queried = [
        f"w{i}"
        for i, (after, before) in enumerate(zip(herd.queries(), queries_before, strict=True))
        if after > before
    ]
    assert 1 <= woken <= 2, f"{woken} of {WORKERS} workers were told to look for the job"
    assert 1 <= len(queried) <= 2, f"{queried} queried the database for one job"
    assert herd.ran_by[handle.id] in queried


async def test_eight_new_jobs_wake_all_eight_idle_workers(herd: Herd) -> None:
    queries_before = herd.queries()

    handles = await commit_jobs(herd, WORKERS)
    # With one slot each, eight jobs running at once means every worker took one.
    try:
        async with asyncio.timeout(10):
            await herd.all_running.wait()
    except TimeoutError:
        raise AssertionError(
            f"only {sorted(set(herd.ran_by.values()))} woke up for {WORKERS} jobs"
        ) from None
    for handle in handles:
        await herd.producer.wait_for_chain(handle, timeout=5, poll_interval=0.05)

    assert sorted(herd.ran_by[h.id] for h in handles) == [f"w{i}" for i in range(WORKERS)]
    assert all(after > before for after, before in zip(herd.queries(), queries_before, strict=True))
    assert len(await herd.backend.app_writes()) == WORKERS
