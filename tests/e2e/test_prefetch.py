"""The worker's local queue (``prefetch``): jobs acquired ahead of free slots start
in order, never outlive their lease unstarted, are released on stop with their
attempt refunded, are dropped when their chain is cancelled; queues with a
queue-wide concurrency limit are prefetched within it, per-key limited queues
where completions hand their places on, rate-limited queues never."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

import queuert
from queuert import Job, JobContext, JobStatus, Queuert, ValidationError, Worker, local_queue
from tests.e2e.backends import Backend
from tests.e2e.fixtures_inprocess import make_worker, open_app, wait_for_event, wait_until


@dataclass
class Task:
    name: str
    seconds: float = 0.0


@dataclass
class Done:
    name: str
    attempt: int


tasks = queuert.chain("e2e-prefetch", input=Task, output=Done)
limited = queuert.chain("e2e-prefetch-limited", input=Task, output=Done, concurrency_limit=3)
keyed = queuert.chain(
    "e2e-prefetch-keyed",
    input=Task,
    output=Done,
    concurrency_limit=1,
    concurrency_key=lambda task: task.name,
)
rated = queuert.chain("e2e-prefetch-rated", input=Task, output=Done, rate_limit="1000/s")
CHAINS = [tasks, limited, keyed, rated]


@pytest.fixture(autouse=True)
def deep_local_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """Size the local queue by ``prefetch`` alone, whatever the handlers' durations
    on a loaded test machine."""
    monkeypatch.setattr(local_queue, "HORIZON_S", 1e6)


class Handler:
    """Records each run; the job named ``gate`` waits until the test opens it."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, int]] = []
        self.gate = asyncio.Event()
        self.at_gate = asyncio.Event()

    async def __call__(self, job: Job[Task], ctx: JobContext[Any, Done]) -> Done:
        self.runs.append((job.input.name, job.attempt))
        if job.input.name.startswith("gate"):
            self.at_gate.set()
            await self.gate.wait()
        await asyncio.sleep(job.input.seconds)
        return Done(job.input.name, job.attempt)

    def names(self) -> list[str]:
        return [name for name, _ in self.runs]


def worker_for(app: Queuert[Any], handler: Handler, **options: Any) -> Worker[Any]:
    """A worker running ``handler`` for the plain chain, and for the limited ones
    where the adapter enforces their limits."""
    worker = make_worker(app, **options)
    worker.handler(tasks)(handler)
    if limits_supported(app):
        worker.handler(limited)(handler)
        worker.handler(keyed)(handler)
        worker.handler(rated)(handler)
    return worker


def limits_supported(app: Queuert[Any]) -> bool:
    capabilities = app.state.capabilities
    return capabilities.concurrency_limits and capabilities.rate_limits


async def warm_up(app: Queuert[Any], handler: Handler, chain: Any = tasks) -> None:
    """Run one job: the local queue holds nothing until a handler has ended."""
    handle = await app.enqueue_job_chain(None, chain, Task("warm-up"))
    await app.wait_for_chain(handle, timeout=10.0)


async def running_jobs(app: Queuert[Any], ids: list[str], owner: str) -> bool:
    """Whether every job in ``ids`` is ``running`` under a lease of ``owner``."""
    for job_id in ids:
        record = await app.get_job(job_id)
        if record is None or record.status is not JobStatus.RUNNING or record.leased_by != owner:
            return False
    return True


async def test_prefetched_jobs_start_in_acquisition_order(backend: Backend) -> None:
    async with open_app(backend, CHAINS) as app:
        handler = Handler()
        worker = worker_for(app, handler, concurrency=1, prefetch=5)
        async with worker:
            await warm_up(app, handler)
            gate = await app.enqueue_job_chain(None, tasks, Task("gate"))
            await wait_for_event(handler.at_gate, what="the gated job")
            waiting = [await app.enqueue_job_chain(None, tasks, Task(f"job-{i}")) for i in range(5)]
            ids = [h.id for h in waiting]
            # The next jobs are leased ahead of the busy slot: prefetched.
            await wait_until(
                lambda: running_jobs(app, ids, worker.id), what="the jobs to be prefetched"
            )
            handler.gate.set()
            for handle in [gate, *waiting]:
                await app.wait_for_chain(handle, timeout=10.0)
        assert handler.names() == ["warm-up", "gate", *(f"job-{i}" for i in range(5))]
        # Each ran once, as its first attempt.
        assert {attempt for _, attempt in handler.runs} == {1}


async def test_stop_releases_unstarted_prefetched_jobs_at_once(backend: Backend) -> None:
    async with open_app(backend, CHAINS) as app:
        handler = Handler()
        stopping = worker_for(app, handler, concurrency=1, prefetch=4, lease_ms=60_000)
        await stopping.start()
        try:
            await warm_up(app, handler)
            gate = await app.enqueue_job_chain(None, tasks, Task("gate"))
            await wait_for_event(handler.at_gate, what="the gated job")
            waiting = [await app.enqueue_job_chain(None, tasks, Task(f"job-{i}")) for i in range(4)]
            ids = [h.id for h in waiting]
            before = {job_id: await app.get_job(job_id) for job_id in ids}
            await wait_until(
                lambda: running_jobs(app, ids, stopping.id), what="the jobs to be prefetched"
            )
            stop = asyncio.create_task(stopping.stop(timeout=30.0))

            async def released() -> bool:
                for job_id in ids:
                    record = await app.get_job(job_id)
                    if record is None or record.status is not JobStatus.PENDING:
                        return False
                return True

            # Released while the in-flight job still runs (stop waits for it).
            await wait_until(released, what="the prefetched jobs to be released")
            assert not stop.done()
            for job_id in ids:
                record = await app.get_job(job_id)
                old = before[job_id]
                assert record is not None and old is not None
                assert record.attempt == 0  # never started: not an attempt
                assert record.leased_by is None and record.error is None
                assert record.scheduled_at == old.scheduled_at  # keeps its place
            handler.gate.set()
            await stop
        finally:
            handler.gate.set()
            await stopping.stop(timeout=1.0)
        assert app.metrics.get("jobs.released") == 4
        assert handler.names() == ["warm-up", "gate"]

        # Another worker runs them, each as its first attempt.
        other = Handler()
        async with worker_for(app, other, prefetch=0):
            for i, handle in enumerate(waiting):
                assert await app.wait_for_chain(handle, timeout=10.0) == Done(f"job-{i}", 1)
        assert sorted(other.names()) == [f"job-{i}" for i in range(4)]
        done = await app.get_chain(gate.id)
        assert done is not None and done.status is JobStatus.COMPLETED


async def test_a_prefetched_job_never_outlives_its_lease_unstarted(backend: Backend) -> None:
    # Each job takes most of the lease and one slot runs them one by one, so the
    # last ones wait in the local queue for several leases' length.
    lease_ms = 600
    async with open_app(backend, CHAINS) as app:
        handler = Handler()
        worker = worker_for(app, handler, concurrency=1, prefetch=5, lease_ms=lease_ms)
        async with worker:
            await warm_up(app, handler)
            handles = [
                await app.enqueue_job_chain(None, tasks, Task(f"slow-{i}", 0.25)) for i in range(6)
            ]
            for i, handle in enumerate(handles):
                assert await app.wait_for_chain(handle, timeout=20.0) == Done(f"slow-{i}", 1)
        # No lease ran out: nothing reaped, nothing run twice, no attempt lost.
        assert app.metrics.get("jobs.reaped") == 0
        assert sorted(handler.names()) == sorted(["warm-up", *(f"slow-{i}" for i in range(6))])
        for handle in handles:
            record = await app.get_job(handle.id)
            assert record is not None and record.attempt == 1 and record.error is None


async def test_a_cancelled_chains_prefetched_job_never_runs(backend: Backend) -> None:
    async with open_app(backend, CHAINS) as app:
        handler = Handler()
        worker = worker_for(app, handler, concurrency=1, prefetch=5, lease_ms=60_000)
        async with worker:
            await warm_up(app, handler)
            gate = await app.enqueue_job_chain(None, tasks, Task("gate"))
            await wait_for_event(handler.at_gate, what="the gated job")
            doomed = await app.enqueue_job_chain(None, tasks, Task("doomed"))
            await wait_until(
                lambda: running_jobs(app, [doomed.id], worker.id), what="the job to be prefetched"
            )
            cancelled = await app.cancel_chain(doomed.id)
            assert cancelled.status is JobStatus.CANCELLED
            await wait_until(
                lambda: asyncio.sleep(0, app.metrics.get("jobs.lease_lost") == 1),
                what="the prefetched job to be dropped",
            )
            later = await app.enqueue_job_chain(None, tasks, Task("later"))
            handler.gate.set()
            await app.wait_for_chain(gate, timeout=10.0)
            await app.wait_for_chain(later, timeout=10.0)
        assert handler.names() == ["warm-up", "gate", "later"]
        record = await app.get_job(doomed.id)
        assert record is not None and record.status is JobStatus.CANCELLED


async def backlog_behind_a_gate(
    app: Queuert[Any], handler: Handler, chain: Any
) -> tuple[Any, list[Any], Any]:
    """Hold the worker's one slot with a gated job of ``chain``, then start three more
    of ``chain`` and one plain job while the slot is busy (so the worker learns of a
    backlog); returns the gated job, the three, and the plain one."""
    await warm_up(app, handler, chain)
    gate = await app.enqueue_job_chain(None, chain, Task("gate"))
    await wait_for_event(handler.at_gate, what="the gated job")
    rest = [await app.enqueue_job_chain(None, chain, Task(f"job-{i}")) for i in range(3)]
    plain = await app.enqueue_job_chain(None, tasks, Task("plain"))
    return gate, rest, plain


async def pending(app: Queuert[Any], handles: list[Any]) -> None:
    for handle in handles:
        record = await app.get_job(handle.id)
        assert record is not None and record.status is JobStatus.PENDING


@pytest.mark.parametrize("chain", [keyed, rated], ids=["per-key limited", "rate-limited"])
async def test_rate_limited_queues_are_not_prefetched_nor_per_key_ones_without_hand_offs(
    backend: Backend, chain: Any
) -> None:
    # Per-key limited queues are prefetched (within each key's limit) only where a
    # completion hands its place to the key's next job; rate-limited ones never.
    async with open_app(backend, CHAINS) as app:
        if not limits_supported(app):
            pytest.skip("the adapter enforces no concurrency or rate limits")
        prefetched = chain is keyed and app.state.capabilities.hand_off
        handler = Handler()
        worker = worker_for(app, handler, concurrency=1, prefetch=5)
        async with worker:
            gate, rest, plain = await backlog_behind_a_gate(app, handler, chain)
            # The plain job, enqueued after them, is prefetched: the worker does prefetch.
            ahead = [plain, *rest] if prefetched else [plain]
            await wait_until(
                lambda: running_jobs(app, [h.id for h in ahead], worker.id),
                what="the jobs to be prefetched",
            )
            if not prefetched:
                await pending(app, rest)
            handler.gate.set()
            for handle in [gate, *rest, plain]:
                await app.wait_for_chain(handle, timeout=10.0)


async def test_a_queue_wide_limited_queue_is_prefetched_only_within_its_limit(
    backend: Backend,
) -> None:
    # Limit 3 and one slot: the running job and two prefetched ones hold the three
    # places; the fourth job stays pending until one of them ends.
    async with open_app(backend, CHAINS) as app:
        if not limits_supported(app):
            pytest.skip("the adapter enforces no concurrency or rate limits")
        handler = Handler()
        worker = worker_for(app, handler, concurrency=1, prefetch=5)
        async with worker:
            gate, rest, plain = await backlog_behind_a_gate(app, handler, limited)
            await wait_until(
                lambda: running_jobs(app, [rest[0].id, rest[1].id, plain.id], worker.id),
                what="two limited jobs and the plain one prefetched",
            )
            await pending(app, rest[2:])
            handler.gate.set()
            for handle in [gate, *rest, plain]:
                await app.wait_for_chain(handle, timeout=10.0)
        assert handler.names().index("gate") < handler.names().index("job-2")


@pytest.mark.parametrize("value", [-1, True, 1.5, "4", 10_001])
async def test_prefetch_is_validated(value: object) -> None:
    app: Queuert[Any] = queuert.Queuert(state=queuert.MemoryStateAdapter(), chains=CHAINS)
    with pytest.raises(ValidationError, match="prefetch"):
        app.worker(prefetch=value)  # type: ignore[arg-type]
