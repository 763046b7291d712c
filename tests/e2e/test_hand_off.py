"""A completion of a concurrency-limited queue's job hands its place to the queue's
(key's) next job, which the same worker runs without acquiring it: the limit
still holds, a stopping worker releases the job it was handed, and a hand-off
whose acknowledgement was lost still gets its job run."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

import queuert
from queuert import Job, JobContext, JobStatus, MemoryStateAdapter, Queuert
from queuert.errors import TransientStateError
from queuert.records import JobRecord
from tests.e2e.backends import Backend
from tests.e2e.fixtures_inprocess import make_worker, open_app, wait_for_event, wait_until


@dataclass
class Task:
    name: str
    key: str = ""


@dataclass
class Done:
    name: str
    attempt: int


wide = queuert.chain("e2e-hand-off-wide", input=Task, output=Done, concurrency_limit=1)
keyed = queuert.chain(
    "e2e-hand-off-keyed",
    input=Task,
    output=Done,
    concurrency_limit=1,
    concurrency_key=lambda task: task.key,
)
CHAINS = [wide, keyed]


class Handler:
    """Records each run and the most runs of one key it saw at once."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, int]] = []
        self.running: dict[str, int] = {}
        self.most = 0
        self.started = asyncio.Event()

    async def __call__(self, job: Job[Task], ctx: JobContext[Any, Done]) -> Done:
        key = job.input.key
        self.runs.append((job.input.name, job.attempt))
        self.running[key] = self.running.get(key, 0) + 1
        self.most = max(self.most, self.running[key])
        self.started.set()
        try:
            await asyncio.sleep(0.01)
        finally:
            self.running[key] -= 1
        return Done(job.input.name, job.attempt)


def hands_off(app: Queuert[Any]) -> bool:
    return app.state.capabilities.hand_off


@pytest.mark.parametrize("per_key", [False, True], ids=["queue-wide", "per key"])
async def test_each_completion_hands_its_place_to_the_next_job(
    backend: Backend, per_key: bool
) -> None:
    async with open_app(backend, CHAINS) as app:
        if not hands_off(app):
            pytest.skip("the adapter does not hand places on (capabilities.hand_off)")
        chain = keyed if per_key else wide
        keys = ["a", "b"] if per_key else [""]
        tasks = [Task(f"{key}{n}", key) for n in range(3) for key in keys]
        handles = await app.enqueue_job_chains(None, chain, tasks)
        handler = Handler()
        # A poll far away: the next jobs start because they were handed a place.
        worker = make_worker(app, concurrency=3, poll_interval=60.0)
        worker.handler(chain)(handler)
        async with worker:
            for handle in handles:
                await app.wait_for_chain(handle, timeout=10.0)
        assert handler.most == 1, "the limit did not hold"
        assert sorted(name for name, _ in handler.runs) == sorted(t.name for t in tasks)
        # Each key's first job was acquired; every later one was handed its place.
        assert app.metrics.get("jobs.handed_off") == len(tasks) - len(keys)
        for key in keys:
            names = [name for name, _ in handler.runs if name.startswith(key)]
            assert names == [f"{key}{n}" for n in range(3)], "a key's jobs ran out of order"


async def test_workers_sharing_an_adapter_each_run_the_jobs_handed_to_them(
    backend: Backend,
) -> None:
    # Their completions share statements: each place goes to its own worker's job.
    async with open_app(backend, CHAINS) as app:
        if not hands_off(app):
            pytest.skip("the adapter does not hand places on (capabilities.hand_off)")
        tasks = [Task(f"{key}{n}", key) for n in range(6) for key in "abcd"]
        handles = await app.enqueue_job_chains(None, keyed, tasks)
        handler = Handler()
        workers = [make_worker(app, concurrency=2, poll_interval=60.0) for _ in range(3)]
        for worker in workers:
            worker.handler(keyed)(handler)
        for worker in workers:
            await worker.start()
        try:
            for handle in handles:
                await app.wait_for_chain(handle, timeout=10.0)
        finally:
            for worker in workers:
                await worker.stop()
        assert handler.most == 1, "a key ran two jobs at once"
        assert sorted(name for name, _ in handler.runs) == sorted(t.name for t in tasks)
        assert all(attempt == 1 for _, attempt in handler.runs)
        assert app.metrics.get("jobs.handed_off") > 0


class GatedState(MemoryStateAdapter):
    """The in-memory adapter whose hand-offs, and limited acquisitions once
    ``gating`` is set, wait for the test to open their gate."""

    def __init__(self) -> None:
        super().__init__()
        self.hand_off_gate = asyncio.Event()
        self.handing_off = asyncio.Event()
        self.handed = asyncio.Event()
        self.gating = False
        self.acquire_gate = asyncio.Event()
        self.acquiring = asyncio.Event()
        self.lose_acknowledgements = 0

    async def complete_job_and_hand_off(self, **options: Any) -> tuple[JobRecord, JobRecord | None]:
        self.handing_off.set()
        await self.hand_off_gate.wait()
        result = await super().complete_job_and_hand_off(**options)
        self.handed.set()
        if self.lose_acknowledgements > 0:
            self.lose_acknowledgements -= 1
            raise TransientStateError("the connection dropped before the commit's reply")
        return result

    async def acquire_limited_jobs(self, **options: Any) -> list[JobRecord]:
        if self.gating:
            self.acquiring.set()
            await self.acquire_gate.wait()
        return await super().acquire_limited_jobs(**options)


async def gated_app(state: GatedState, *, notify: bool = False) -> Queuert[Any]:
    await state.migrate()
    notifier = queuert.InProcessNotifyAdapter() if notify else None
    return queuert.Queuert(state=state, notify=notifier, chains=CHAINS)


async def job_status(app: Queuert[Any], job_id: str) -> tuple[JobStatus, int]:
    record = await app.get_job(job_id)
    assert record is not None
    return record.status, record.attempt


async def test_a_job_handed_a_place_during_an_acquisition_starts_when_it_returns() -> None:
    state = GatedState()
    app = await gated_app(state, notify=True)
    first, second = await app.enqueue_job_chains(None, wide, [Task("first"), Task("second")])
    handler = Handler()
    worker = make_worker(app, concurrency=1, poll_interval=60.0)
    worker.handler(wide)(handler)
    async with worker:
        # The first job's handler ended and its completion waits: its slot is free.
        await wait_for_event(state.handing_off, what="the first job's completion")
        state.gating = True
        # A new job wakes the worker, whose acquisition keeps the free slot.
        third = await app.enqueue_job_chain(None, wide, Task("third"))
        await wait_for_event(state.acquiring, what="an acquisition for the free slot")
        state.hand_off_gate.set()
        await wait_for_event(state.handed, what="the hand-off")
        # The acquisition finds the place taken by the handed job.
        state.gating = False
        state.acquire_gate.set()
        # The handed job starts now, not at the worker's next poll a minute away.
        await app.wait_for_chain(second, timeout=5.0)
        await app.wait_for_chain(third, timeout=5.0)
    await app.wait_for_chain(first, timeout=1.0)
    assert [name for name, _ in handler.runs] == ["first", "second", "third"]
    await app.close()


async def test_a_stopping_worker_releases_the_job_it_was_handed() -> None:
    state = GatedState()
    app = await gated_app(state)
    first, second = await app.enqueue_job_chains(None, wide, [Task("first"), Task("second")])
    handler = Handler()
    worker = make_worker(app, concurrency=1, poll_interval=60.0)
    worker.handler(wide)(handler)
    await worker.start()
    await wait_for_event(state.handing_off, what="the first job's completion")
    stopping = asyncio.create_task(worker.stop(timeout=5.0))
    await wait_until(lambda: _true(worker._stopping.is_set()), what="the stop to begin")
    state.hand_off_gate.set()
    await stopping
    assert await job_status(app, first.id) == (JobStatus.COMPLETED, 1)
    # Handed while the worker stopped: back to pending, its attempt refunded.
    assert await job_status(app, second.id) == (JobStatus.PENDING, 0)
    assert [name for name, _ in handler.runs] == ["first"]
    await app.close()


async def test_a_hand_off_whose_acknowledgement_was_lost_still_runs_its_job() -> None:
    state = GatedState()
    state.hand_off_gate.set()
    state.lose_acknowledgements = 1
    app = await gated_app(state)
    first, second = await app.enqueue_job_chains(None, wide, [Task("first"), Task("second")])
    handler = Handler()
    # A long lease: without the recovery the handed job would wait for it to expire.
    worker = make_worker(app, concurrency=1, poll_interval=60.0, lease_ms=60_000)
    worker.handler(wide)(handler)
    async with worker:
        await app.wait_for_chain(first, timeout=5.0)
        await app.wait_for_chain(second, timeout=5.0)
    assert [name for name, _ in handler.runs] == ["first", "second"]
    assert app.metrics.get("state.complete_job_and_hand_off.found_done") == 1
    await app.close()


async def _true(value: bool) -> bool | None:
    return True if value else None
