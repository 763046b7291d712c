"""Starting chains inside the application's own transaction: they exist exactly
when it commits, their notifications leave only after the commit, and they run
when they are due, higher priority first among jobs due at the same time."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import queuert
from queuert import Job, JobContext, JobStatus, ScheduledSignal
from tests.e2e.backends import Backend
from tests.e2e.fixtures_inprocess import (
    caller_transaction,
    make_worker,
    open_app,
    wait_for_event,
)
from tests.waiting import eventually


@dataclass
class Order:
    n: int


@dataclass
class Receipt:
    n: int


orders = queuert.chain("e2e-enqueue", input=Order, output=Receipt)


class AppFailure(Exception):
    """The application's own error that rolls its transaction back."""


class SignalLog:
    """Collects the job-scheduled signals a subscriber receives."""

    def __init__(self) -> None:
        self.signals: list[ScheduledSignal] = []

    async def __call__(self, signal: ScheduledSignal) -> None:
        self.signals.append(signal)

    def total(self) -> int:
        return sum(signal.count for signal in self.signals)


@pytest.mark.parametrize("native", [True, False], ids=["driver-transaction", "adapter-transaction"])
async def test_rollback_leaves_no_job_and_sends_no_notification(
    backend: Backend, native: bool
) -> None:
    async with open_app(backend, [orders]) as app:
        assert app.notify is not None
        log = SignalLog()
        subscription = await app.notify.subscribe_job_scheduled(queues=[orders.name], listener=log)
        try:
            with pytest.raises(AppFailure):
                async with app.with_notify(), caller_transaction(backend, native=native) as tx:
                    rolled_back = await app.enqueue_job_chain(tx, orders, Order(1))
                    await backend.app_write(tx, "rolled-back")
                    raise AppFailure

            assert (await app.list_jobs()).items == []
            assert await app.get_chain(rolled_back.id) is None
            assert await app.get_job(rolled_back.id) is None
            assert await backend.app_writes() == {}

            # A commit through the same path is delivered; signals reach a listener in
            # publish order, so had the rolled-back one been sent it would come first.
            async with app.with_notify(), caller_transaction(backend, native=native) as tx:
                committed = await app.enqueue_job_chain(tx, orders, Order(2))
                await backend.app_write(tx, "committed")
            await eventually(lambda: log.total() >= 1, message="the commit's signal")
        finally:
            await subscription.unsubscribe()

        assert [(s.queue, s.count) for s in log.signals] == [(orders.name, 1)]
        page = await app.list_jobs()
        assert [job.id for job in page.items] == [committed.id]
        chain = await app.get_chain(committed.id)
        assert chain is not None and chain.status is JobStatus.PENDING
        assert chain.input_value() == {"n": 2}
        assert await backend.app_writes() == {"committed": 1}


async def test_notifications_wait_for_the_end_of_the_block(backend: Backend) -> None:
    async with open_app(backend, [orders]) as app:
        assert app.notify is not None
        log = SignalLog()
        subscription = await app.notify.subscribe_job_scheduled(queues=[orders.name], listener=log)
        try:
            async with app.with_notify():
                async with caller_transaction(backend) as tx:
                    await app.enqueue_job_chain(tx, orders, Order(1))
                await app.enqueue_job_chains(None, orders, [Order(2), Order(3)])
                # Give the delivery tasks every chance to run: nothing may arrive yet.
                for _ in range(5):
                    await asyncio.sleep(0)
                assert log.signals == []
            await eventually(lambda: log.total() == 3, message="3 scheduled jobs")
        finally:
            await subscription.unsubscribe()


async def test_commit_wakes_an_idle_worker_long_before_its_poll(backend: Backend) -> None:
    async with open_app(backend, [orders]) as app:
        worker = make_worker(app, poll_interval=30.0)

        @worker.handler(orders)
        async def handle(job: Job[Order], ctx: JobContext[Any, Receipt]) -> Receipt:
            return Receipt(job.input.n * 10)

        async with worker:
            # The worker found nothing and went idle for its 30 s poll interval.
            await eventually(
                lambda: app.metrics.get("worker.acquire_attempts") >= 1,
                message="the worker's first acquire",
            )
            async with app.with_notify(), caller_transaction(backend) as tx:
                handle_ = await app.enqueue_job_chain(tx, orders, Order(4))
            receipt = await app.wait_for_chain(handle_, timeout=5.0)

        assert receipt == Receipt(40)


async def test_batch_enqueue_is_all_or_nothing_and_runs_every_chain(backend: Backend) -> None:
    async with open_app(backend, [orders]) as app:
        assert app.notify is not None
        log = SignalLog()
        subscription = await app.notify.subscribe_job_scheduled(queues=[orders.name], listener=log)
        worker = make_worker(app, poll_interval=30.0, concurrency=3)

        @worker.handler(orders)
        async def handle(job: Job[Order], ctx: JobContext[Any, Receipt]) -> Receipt:
            return Receipt(job.input.n + 100)

        try:
            with pytest.raises(AppFailure):
                async with app.with_notify(), caller_transaction(backend) as tx:
                    await app.enqueue_job_chains(tx, orders, [Order(i) for i in range(5)])
                    raise AppFailure
            assert (await app.list_chains()).items == []

            async with worker:
                await eventually(
                    lambda: app.metrics.get("worker.acquire_attempts") >= 1,
                    message="the worker's first acquire",
                )
                async with app.with_notify(), caller_transaction(backend) as tx:
                    handles = await app.enqueue_job_chains(tx, orders, [Order(i) for i in range(5)])
                results = [await app.wait_for_chain(h, timeout=5.0) for h in handles]
        finally:
            await subscription.unsubscribe()

        assert results == [Receipt(i + 100) for i in range(5)]
        # One signal for the whole batch, none for the rolled-back one.
        assert [(s.queue, s.count) for s in log.signals] == [(orders.name, 5)]
        chains = await app.list_chains()
        assert sorted(c.id for c in chains.items) == sorted(h.id for h in handles)
        assert [c.input_value() for c in chains.items] == [{"n": i} for i in range(5)]


async def test_delayed_chain_is_not_acquired_before_it_is_due(backend: Backend) -> None:
    async with open_app(backend, [orders]) as app:
        acquired: dict[int, queuert.JobRecord] = {}
        worker = make_worker(app, poll_interval=0.05)

        @worker.handler(orders)
        async def handle(job: Job[Order], ctx: JobContext[Any, Receipt]) -> Receipt:
            acquired[job.input.n] = job.record
            return Receipt(job.input.n)

        async with worker:
            delayed = await app.enqueue_job_chain(
                None, orders, Order(1), delay=timedelta(milliseconds=400)
            )
            record = await app.get_job(delayed.id)
            assert record is not None
            assert record.scheduled_at - record.created_at == pytest.approx(
                timedelta(milliseconds=400), abs=timedelta(milliseconds=2)
            )
            start_at = record.created_at + timedelta(milliseconds=300)
            timed = await app.enqueue_job_chain(None, orders, Order(2), start_at=start_at)
            timed_record = await app.get_job(timed.id)
            assert timed_record is not None
            assert timed_record.scheduled_at == pytest.approx(
                start_at, abs=timedelta(milliseconds=1)
            )
            assert await app.wait_for_chain(delayed, timeout=5.0) == Receipt(1)
            assert await app.wait_for_chain(timed, timeout=5.0) == Receipt(2)

        # The lease was taken (updated_at of the acquired record, by the store's
        # clock) no earlier than the job was due.
        assert acquired[1].updated_at >= acquired[1].scheduled_at == record.scheduled_at
        assert acquired[2].updated_at >= acquired[2].scheduled_at
        assert acquired[1].attempt == acquired[2].attempt == 1


async def test_worker_with_a_long_poll_wakes_when_a_delayed_job_is_due(backend: Backend) -> None:
    async with open_app(backend, [orders]) as app:
        delayed = await app.enqueue_job_chain(
            None, orders, Order(7), delay=timedelta(milliseconds=300)
        )
        worker = make_worker(app, poll_interval=30.0)

        @worker.handler(orders)
        async def handle(job: Job[Order], ctx: JobContext[Any, Receipt]) -> Receipt:
            return Receipt(job.input.n)

        async with worker:
            assert await app.wait_for_chain(delayed, timeout=5.0) == Receipt(7)


async def test_jobs_due_at_the_same_time_run_by_priority(backend: Backend) -> None:
    async with open_app(backend, [orders]) as app:
        due = datetime.now(UTC) - timedelta(seconds=1)
        order: list[int] = []
        handles = []
        for n, priority in [(1, 0), (2, 5), (3, -3), (4, 5), (5, 9)]:
            handles.append(
                await app.enqueue_job_chain(None, orders, Order(n), start_at=due, priority=priority)
            )
        records = [await app.get_job(h.id) for h in handles]
        assert [r.priority for r in records if r is not None] == [0, 5, -3, 5, 9]
        worker = make_worker(app, concurrency=1)
        done = asyncio.Event()

        @worker.handler(orders)
        async def handle(job: Job[Order], ctx: JobContext[Any, Receipt]) -> Receipt:
            order.append(job.input.n)
            if len(order) == 5:
                done.set()
            return Receipt(job.input.n)

        async with worker:
            await wait_for_event(done, what="all five jobs")

        # Higher priority first; equal priority in creation (id) order.
        assert order == [5, 2, 4, 1, 3]
