"""Workflows on every backend, continued: a job unblocked by a completion wakes its
idle workers, blockers combined with a deduplication key, what such starts tell
an observer, and the concurrency key they store."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

import queuert
from queuert import Lease, NewJob, Observer
from tests.e2e.backends import Backend
from tests.waiting import eventually


@dataclass
class Step:
    n: int


@dataclass
class Keyed:
    n: int
    key: str


source_chain = queuert.chain("wfs-source", input=Step, output=int)
sink_chain = queuert.chain("wfs-sink", input=Step, output=list)
legacy = sink_chain.queue("legacy", input=Step, load_blockers=True)
keyed_chain = queuert.chain(
    "wfs-keyed",
    input=Keyed,
    output=int,
    concurrency_limit=1,
    concurrency_key=lambda item: item.key,
)


def _app(backend: Backend, *chains: queuert.ChainDef[Any, Any]) -> queuert.Queuert[Any]:
    return queuert.Queuert(
        state=backend.state, notify=queuert.InProcessNotifyAdapter(), chains=list(chains)
    )


@pytest.mark.parametrize("ends", ["returns", "finalizes", "from-outside"])
async def test_a_completion_that_unblocks_a_job_wakes_its_idle_worker(
    backend: Backend, ends: str
) -> None:
    notify = queuert.InProcessNotifyAdapter()
    app = queuert.Queuert(state=backend.state, notify=notify, chains=[source_chain, sink_chain])
    # Another application on the same stores, so that its metrics are its worker's.
    sink_app = queuert.Queuert(
        state=backend.state, notify=notify, chains=[source_chain, sink_chain]
    )
    sources = app.worker(concurrency=2, poll_interval=0.05, queues=[source_chain])
    # Polling every 30 s: the waiting job starts sooner only when a signal wakes it.
    sinks = sink_app.worker(concurrency=2, poll_interval=30.0, queues=[sink_chain])
    release = asyncio.Event()

    @sources.handler(source_chain)
    async def source(job: queuert.Job[Step], ctx: queuert.JobContext[Any, int]) -> Any:
        await release.wait()
        if ends == "returns":
            return job.input.n * 10

        async def commit(tx: Any, enqueue_job: queuert.EnqueueJob[int]) -> int:
            return job.input.n * 10

        return await ctx.finalize(commit)

    @sinks.handler(sink_chain)
    async def sink(job: queuert.Job[Step], ctx: queuert.JobContext[Any, list[Any]]) -> Any:
        return job.blockers.outputs(source_chain)

    async with sources, sinks:
        blocker = await app.enqueue_job_chain(None, source_chain, Step(4))
        waiting = await app.enqueue_job_chain(None, sink_chain, Step(0), blockers=[blocker])

        job = await app.get_job(waiting.id)
        assert job is not None and job.status is queuert.JobStatus.BLOCKED
        # The sink worker looked once (and found the job blocked): it now sleeps.
        await eventually(lambda: sink_app.metrics.get("worker.acquire_attempts") >= 1)
        if ends == "from-outside":
            await app.complete_job(None, blocker.id, output=40)
        release.set()
        assert await app.wait_for_chain(waiting, timeout=5, poll_interval=0.05) == [40]


async def test_job_blockers_are_read_for_every_queue_and_load_blockers_is_accepted(
    backend: Backend,
) -> None:
    app = _app(backend, source_chain, sink_chain)
    worker = app.worker(concurrency=2, poll_interval=0.05)
    seen: list[tuple[str, list[int]]] = []

    @worker.handler(source_chain)
    async def source(job: queuert.Job[Step], ctx: queuert.JobContext[Any, int]) -> Any:
        return job.input.n

    @worker.handler(sink_chain)
    async def sink(job: queuert.Job[Step], ctx: queuert.JobContext[Any, list[Any]]) -> Any:
        seen.append((job.queue, job.blockers.outputs(source_chain)))

        async def commit(tx: Any, enqueue_job: queuert.EnqueueJob[list[Any]]) -> Any:
            later = await app.enqueue_job_chain(tx, source_chain, Step(7))
            return await enqueue_job(legacy, Step(0), blockers=[later])

        return await ctx.finalize(commit)

    @worker.handler(legacy)
    async def last(job: queuert.Job[Step], ctx: queuert.JobContext[Any, list[Any]]) -> Any:
        seen.append((job.queue, job.blockers.outputs(source_chain)))
        return [len(await ctx.blockers())]

    async with worker:
        blockers = await app.enqueue_job_chains(None, source_chain, [Step(1), Step(2)])
        handle = await app.enqueue_job_chain(None, sink_chain, Step(0), blockers=blockers)
        assert await app.wait_for_chain(handle, timeout=30) == [1]
    assert seen == [(sink_chain.name, [1, 2]), (legacy.name, [7])]


async def test_a_deduplicated_start_may_wait_on_blockers(backend: Backend) -> None:
    app = _app(backend, source_chain, sink_chain)
    worker = app.worker(concurrency=2, poll_interval=0.05)
    release = asyncio.Event()

    @worker.handler(source_chain)
    async def source(job: queuert.Job[Step], ctx: queuert.JobContext[Any, int]) -> Any:
        await release.wait()
        return job.input.n

    @worker.handler(sink_chain)
    async def sink(job: queuert.Job[Step], ctx: queuert.JobContext[Any, list[Any]]) -> Any:
        return job.blockers.outputs(source_chain)

    async with worker:
        blocker = await app.enqueue_job_chain(None, source_chain, Step(5))
        first = await app.enqueue_job_chain(
            None, sink_chain, Step(1), blockers=[blocker], dedup_key="order-1"
        )
        again = await app.enqueue_job_chain(
            None, sink_chain, Step(2), blockers=[blocker], dedup_key="order-1"
        )
        assert (again.id, again.deduplicated, first.deduplicated) == (first.id, True, False)
        job = await app.get_job(first.id)
        assert job is not None and job.status is queuert.JobStatus.BLOCKED
        with pytest.raises(queuert.JobNotFoundError):
            await app.enqueue_job_chain(
                None,
                sink_chain,
                Step(3),
                blockers=[queuert.ChainHandle("0" * 26, source_chain)],
                dedup_key="order-2",
            )
        release.set()
        assert await app.wait_for_chain(first, timeout=30) == [5]
    assert (await app.list_chains(dedup_key="order-2")).items == []
    dependents = await app.state.list_dependent_chains(tx=None, chain_ids=[blocker.id])
    assert dependents == [first.id]
    later = await app.enqueue_job_chain(None, sink_chain, Step(4), dedup_key="order-1")
    newest = await app.list_chains(dedup_key="order-1", order="newest")
    assert [c.id for c in newest.items] == [later.id, first.id]
    window = await app.list_chains(dedup_key="order-1", created_before=newest.items[0].created_at)
    assert [c.id for c in window.items] == [first.id]


class Creations(Observer):
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    @contextlib.contextmanager
    def creating(self, jobs: Sequence[NewJob], *, by: Lease | None) -> Iterator[Sequence[NewJob]]:
        self.calls.append(("creating", [job.queue for job in jobs]))
        yield jobs
        self.calls.append(("created", [job.queue for job in jobs]))

    def deduplicated(self, jobs: Sequence[NewJob]) -> None:
        self.calls.append(("deduplicated", [job.queue for job in jobs]))


async def test_starts_with_a_key_or_blockers_pass_through_the_observer(backend: Backend) -> None:
    app = _app(backend, source_chain, sink_chain)
    observer = Creations()
    app.observe(observer)
    blocker = await app.enqueue_job_chain(None, source_chain, Step(1))
    await app.enqueue_job_chain(None, sink_chain, Step(1), blockers=[blocker])
    await app.enqueue_job_chain(None, sink_chain, Step(2), dedup_key="k")
    await app.enqueue_job_chains(None, sink_chain, [Step(3), Step(4)], dedup_keys=["k", "j"])
    await app.enqueue_job_chain(None, sink_chain, Step(5), blockers=[blocker], dedup_key="b")
    one, two = [source_chain.name], [sink_chain.name]
    assert observer.calls == [
        ("creating", one),
        ("created", one),
        ("creating", two),
        ("created", two),
        ("creating", two),
        ("created", two),
        ("creating", two * 2),
        ("deduplicated", two),
        ("created", two * 2),
        ("creating", two),
        ("created", two),
    ]


@pytest.mark.parametrize("start", ["dedup", "blockers", "dedup+blockers"])
async def test_keyed_and_blocked_starts_store_the_chains_concurrency_key(
    backend: Backend, start: str
) -> None:
    app = _app(backend, source_chain, keyed_chain)
    worker = app.worker(concurrency=6, poll_interval=0.05)
    running: Counter[str] = Counter()
    peak: Counter[str] = Counter()
    started = {"a": asyncio.Event(), "b": asyncio.Event()}
    overlapped: list[bool] = []

    @worker.handler(source_chain)
    async def source(job: queuert.Job[Step], ctx: queuert.JobContext[Any, int]) -> Any:
        return job.input.n

    @worker.handler(keyed_chain)
    async def keyed(job: queuert.Job[Keyed], ctx: queuert.JobContext[Any, int]) -> Any:
        key = job.input.key
        running[key] += 1
        peak[key] = max(peak[key], running[key])
        started[key].set()
        try:
            # One job per key at a time, but the two keys side by side: a job of the
            # other key starts meanwhile, unless the keys were lost (then they are one).
            async with asyncio.timeout(5):
                await started["b" if key == "a" else "a"].wait()
            overlapped.append(True)
        except TimeoutError:
            overlapped.append(False)
        finally:
            running[key] -= 1
        return job.input.n

    items = [Keyed(0, "a"), Keyed(1, "b"), Keyed(2, "a")]
    keys = [f"{start}-{item.n}" for item in items]
    async with worker:
        blockers = None
        if start != "dedup":
            blockers = [await app.enqueue_job_chain(None, source_chain, Step(0))]
        handles = await app.enqueue_job_chains(
            None,
            keyed_chain,
            items,
            blockers=blockers,
            dedup_keys=None if start == "blockers" else keys,
        )
        outputs = [await app.wait_for_chain(h, timeout=30) for h in handles]
    assert outputs == [0, 1, 2]
    assert peak == Counter({"a": 1, "b": 1})
    assert overlapped == [True] * 3
