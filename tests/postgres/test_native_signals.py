"""A PostgreSQL state adapter bound to a LISTEN/NOTIFY notifier on the same database
sends job-scheduled and chain-completed signals from inside its own writes: they
leave when the write's transaction commits (no ``with_notify`` needed), never when
it rolls back, and core does not publish them a second time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio

import queuert
from queuert import EnqueueJob, InProcessNotifyAdapter, Job, JobContext, ScheduledSignal
from queuert_postgres import PostgresNotifyAdapter, PostgresStateAdapter
from tests.postgres.conftest import drop_schema, unique_name
from tests.waiting import eventually

WAIT_S = 10.0


@dataclass
class Item:
    n: int


@dataclass
class Done:
    n: int


signalled = queuert.chain("signalled", input=Item, output=Done)
other = queuert.chain("signalled-other", input=Item, output=Done)
flaky = queuert.chain(
    "signalled-flaky",
    input=Item,
    output=Done,
    retry=queuert.RetryPolicy(max_attempts=2, initial_delay_ms=0, max_delay_ms=0),
)


@dataclass
class Setup:
    app: queuert.Queuert[Any]
    state: PostgresStateAdapter
    listener: PostgresNotifyAdapter
    """A second notifier on the same channels, as another process would have."""
    scheduled: list[ScheduledSignal]
    completed: list[str]


@pytest_asyncio.fixture
async def setup(postgres_url: str) -> AsyncIterator[Setup]:
    schema = unique_name()
    prefix = unique_name("sig")
    state = await PostgresStateAdapter.connect(postgres_url, schema=schema, max_size=4)
    await state.migrate()
    app: queuert.Queuert[Any] = queuert.Queuert(
        state=state,
        notify=PostgresNotifyAdapter(postgres_url, channel_prefix=prefix),
        chains=[signalled, other, flaky],
    )
    listener = PostgresNotifyAdapter(postgres_url, channel_prefix=prefix)
    scheduled: list[ScheduledSignal] = []
    completed: list[str] = []

    async def on_scheduled(signal: ScheduledSignal) -> None:
        scheduled.append(signal)

    async def on_completed(chain_id: str) -> None:
        completed.append(chain_id)

    await listener.subscribe_job_scheduled(
        queues=[signalled.name, other.name], listener=on_scheduled
    )
    await listener.subscribe_chain_completed(chain_id=None, listener=on_completed)
    try:
        yield Setup(app, state, listener, scheduled, completed)
    finally:
        await listener.close()
        await app.close()
        await drop_schema(postgres_url, schema)


def counts(signals: list[ScheduledSignal], queue: str) -> list[int]:
    return [s.count for s in signals if s.queue == queue]


async def test_signals_of_a_chain_started_in_the_application_transaction_leave_on_commit(
    setup: Setup,
) -> None:
    app = setup.app
    async with app.state.transaction() as tx:  # no with_notify: the write carries it
        await app.enqueue_job_chains(tx, signalled, [Item(1), Item(2)])
        # Committed meanwhile by another transaction: delivered, while the first,
        # not yet committed, is not (PostgreSQL delivers in commit order).
        await app.enqueue_job_chain(None, other, Item(3))
        await eventually(lambda: counts(setup.scheduled, other.name) == [1], timeout=WAIT_S)
        assert counts(setup.scheduled, signalled.name) == []
    await eventually(lambda: counts(setup.scheduled, signalled.name) == [2], timeout=WAIT_S)
    assert app.metrics.get("notify.job_scheduled.published") == 0


async def test_a_rolled_back_start_sends_nothing(setup: Setup) -> None:
    app = setup.app
    with pytest.raises(RuntimeError):
        async with app.state.transaction() as tx:
            await app.enqueue_job_chain(tx, signalled, Item(1))
            raise RuntimeError("the application gives up")
    await app.enqueue_job_chain(None, signalled, Item(2))
    await eventually(lambda: setup.scheduled != [], timeout=WAIT_S)
    # Had the rolled-back start been signalled, it would have arrived first.
    assert counts(setup.scheduled, signalled.name) == [1]


async def test_completion_by_a_worker_reaches_a_waiter_without_polling(setup: Setup) -> None:
    app = setup.app
    worker = app.worker(concurrency=2, poll_interval=60.0)

    @worker.handler(signalled)
    async def handle(job: Job[Item], ctx: JobContext[Any, Done]) -> Done:
        return Done(job.input.n)

    async with worker:
        handle_ = await app.enqueue_job_chain(None, signalled, Item(7))
        # The worker is woken by the insert's signal and the waiter by the
        # completion's: neither polls within the timeout.
        done = await app.wait_for_chain(handle_, timeout=WAIT_S, poll_interval=60.0)
    assert done == Done(7)
    # Another process's listener hears it too (on its own connection, maybe later).
    await eventually(lambda: setup.completed == [handle_.id], timeout=WAIT_S)
    assert app.metrics.get("notify.chain_completed.published") == 0


async def test_a_retry_wakes_the_worker_and_a_failure_reaches_the_waiter(setup: Setup) -> None:
    app = setup.app
    worker = app.worker(concurrency=2, poll_interval=60.0)
    attempts: list[int] = []

    @worker.handler(flaky)
    async def handle(job: Job[Item], ctx: JobContext[Any, Done]) -> Done:
        attempts.append(job.attempt)
        raise RuntimeError(f"attempt {job.attempt} fails")

    async with worker:
        handle_ = await app.enqueue_job_chain(None, flaky, Item(1))
        # The retry is announced by the write that reschedules it, the failure by the
        # write that ends the chain: neither waits for a poll.
        with pytest.raises(queuert.ChainFailedError):
            await app.wait_for_chain(handle_, timeout=WAIT_S, poll_interval=60.0)
    assert attempts == [1, 2]


async def test_cancelling_a_chain_signals_its_completion(setup: Setup) -> None:
    app = setup.app
    handle = await app.enqueue_job_chain(None, signalled, Item(1))
    record = await app.cancel_chain(handle.id)
    assert record.status.value == "cancelled"
    await eventually(lambda: setup.completed == [handle.id], timeout=WAIT_S)


async def test_the_adapter_declines_notifiers_it_cannot_reach(postgres_url: str) -> None:
    schema = unique_name()
    state = await PostgresStateAdapter.connect(postgres_url, schema=schema, max_size=2)
    try:
        assert not state.bind_notify(InProcessNotifyAdapter())
        # Another DSN may name another database: core keeps publishing itself.
        assert not state.bind_notify(PostgresNotifyAdapter(postgres_url + "?sslmode=disable"))
        first = PostgresNotifyAdapter(postgres_url, channel_prefix="one")
        assert state.bind_notify(first)
        assert state.bind_notify(PostgresNotifyAdapter(postgres_url, channel_prefix="one"))
        assert not state.bind_notify(PostgresNotifyAdapter(postgres_url, channel_prefix="two"))
        # A notifier publishing through the adapter's own pool is on its database.
        another = await PostgresStateAdapter.connect(postgres_url, schema=schema, max_size=2)
        try:
            via_pool = PostgresNotifyAdapter("postgresql://elsewhere/", publish_pool=another.pool)
            assert another.bind_notify(via_pool)
        finally:
            await another.close()
    finally:
        await state.close()


async def test_cancel_resume_and_completion_from_outside_carry_their_signals(
    setup: Setup,
) -> None:
    app = setup.app
    started = asyncio.Event()
    cancelled: list[str] = []
    worker = app.worker(concurrency=2, poll_interval=60.0, lease_ms=60_000)

    @worker.handler(signalled)
    async def block(job: Job[Item], ctx: JobContext[Any, Done]) -> Done:
        if job.input.n == 1 and not cancelled:  # the resumed run ends at once
            started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.append(job.id)
                raise
        return Done(job.input.n)

    async with worker:
        running = await app.enqueue_job_chain(None, signalled, Item(1))
        async with asyncio.timeout(WAIT_S):
            await started.wait()
        # The lease-lost signal (sent by core) cancels the handler; the revoke's write
        # carries the chain-completed signal.
        await app.cancel_chain(running.id)
        await eventually(lambda: cancelled == [running.id], timeout=WAIT_S)
        await eventually(lambda: running.id in setup.completed, timeout=WAIT_S)
        # Resuming schedules the job again: its signal wakes the worker (no polling).
        setup.scheduled.clear()
        await app.retry_job(running.id)
        await eventually(lambda: counts(setup.scheduled, signalled.name) == [1], timeout=WAIT_S)
        pending = await app.enqueue_job_chain(None, signalled, Item(2), delay=timedelta(hours=1))
        await app.complete_job(None, pending.id, output=Done(20))
        await eventually(lambda: pending.id in setup.completed, timeout=WAIT_S)
    assert app.metrics.get("notify.chain_completed.published") == 0
    assert app.metrics.get("notify.lease_lost.published") >= 1


async def test_a_completion_that_unblocks_a_job_signals_its_queue(setup: Setup) -> None:
    app = setup.app
    worker = app.worker(concurrency=2, poll_interval=60.0, queues=[signalled])
    release = asyncio.Event()

    @worker.handler(signalled)
    async def handle(job: Job[Item], ctx: JobContext[Any, Done]) -> Done:
        await release.wait()
        return Done(job.input.n)

    by_hand = await app.enqueue_job_chain(None, signalled, Item(2), delay=timedelta(hours=1))
    await app.enqueue_job_chain(None, other, Item(20), blockers=[by_hand])
    async with worker:
        blocker = await app.enqueue_job_chain(None, signalled, Item(1))
        await app.enqueue_job_chain(None, other, Item(10), blockers=[blocker])
        # The inserts of the waiting jobs signal their queue too (a woken worker finds
        # them blocked): let those arrive first.
        await eventually(lambda: len(counts(setup.scheduled, other.name)) == 2, timeout=WAIT_S)
        setup.scheduled.clear()
        release.set()
        # The completing statement signals the waiting job's queue as it commits.
        await eventually(lambda: counts(setup.scheduled, other.name) == [1], timeout=WAIT_S)
    setup.scheduled.clear()
    await app.complete_job(None, by_hand.id, output=Done(2))
    await eventually(lambda: counts(setup.scheduled, other.name) == [1], timeout=WAIT_S)
    assert app.metrics.get("notify.job_scheduled.published") == 0


async def test_a_finalize_that_unblocks_a_job_signals_its_queue_after_the_commit(
    setup: Setup,
) -> None:
    """A finalize callback's completion writes without signals and hands them to the
    notifier after its commit: the wake-up of the jobs it unblocked is among them."""
    app = setup.app
    worker = app.worker(concurrency=2, poll_interval=60.0, queues=[signalled])
    release = asyncio.Event()

    @worker.handler(signalled)
    async def handle(job: Job[Item], ctx: JobContext[Any, Done]) -> Done:
        await release.wait()

        async def finish(tx: Any, enqueue_job: EnqueueJob[Done]) -> Done:
            return Done(job.input.n)

        return await ctx.finalize(finish)

    async with worker:
        blocker = await app.enqueue_job_chain(None, signalled, Item(1))
        await app.enqueue_job_chain(None, other, Item(10), blockers=[blocker])
        # The waiting job's insert signals its queue too: let that arrive first.
        await eventually(lambda: len(counts(setup.scheduled, other.name)) == 1, timeout=WAIT_S)
        setup.scheduled.clear()
        release.set()
        await eventually(lambda: counts(setup.scheduled, other.name) == [1], timeout=WAIT_S)
