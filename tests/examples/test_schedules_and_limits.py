"""The schedules and limits example: each slot of its schedules starts one chain
with the slot's input, a per-customer limit keeps one job per customer running
while different customers run in parallel, and a job the provider asks to slow
down comes back later without counting an attempt."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import queuert
from examples.schedules_and_limits import (
    Charge,
    PaymentProvider,
    Receipt,
    ReportInput,
    SyncInput,
    charge,
    new_app,
    ping,
    register_charge_handlers,
    register_sync_handler,
    report,
    sync,
)
from queuert.schedules import Scheduler


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def _chains(app: queuert.Queuert[Any], chain: queuert.ChainDef[Any, Any]) -> list[Any]:
    return list((await app.list_chains(chain=chain, limit=100)).items)


async def test_each_slot_of_the_schedules_starts_one_chain() -> None:
    app = await new_app()
    try:
        # 02:58 in Paris (UTC+2 in June): the nightly slot is 01:00 UTC.
        clock = FakeClock(datetime(2025, 6, 1, 0, 58, tzinfo=UTC))
        scheduler = Scheduler(app, clock=clock)
        assert await scheduler.tick() == [], "a new schedule starts with the next slot"
        clock.now = datetime(2025, 6, 1, 1, 0, 1, tzinfo=UTC)
        three_am = datetime(2025, 6, 1, 1, 0, tzinfo=UTC)
        assert sorted(await scheduler.tick()) == [
            ("heartbeat", three_am),
            ("nightly-report", three_am),
        ]
        assert await Scheduler(app, clock=clock).tick() == [], "a second worker starts nothing"
        clock.now = datetime(2025, 6, 1, 1, 5, 1, tzinfo=UTC)
        assert await scheduler.tick() == [("heartbeat", three_am + timedelta(minutes=5))]

        (nightly,) = await _chains(app, report)
        assert app.chain_def(report).input_codec.decode(nightly.input) == ReportInput(
            day=date(2025, 6, 1)
        )
        slot = await app.schedule_slot(nightly.id)
        assert slot is not None and slot.slot_time == three_am
        assert len(await _chains(app, ping)) == 2
    finally:
        await app.close()


async def test_one_job_per_customer_runs_at_a_time() -> None:
    app = await new_app()
    running: Counter[str] = Counter()
    highest: Counter[str] = Counter()
    overlap = asyncio.Event()

    async def work(job: queuert.Job[SyncInput], ctx: queuert.JobContext[Any, None]) -> None:
        key = job.input.customer_id
        running[key] += 1
        highest[key] = max(highest[key], running[key])
        if len(+running) > 1:
            overlap.set()
        # Hold the place until two customers run at once (or give up after a while,
        # which fails the overlap assertion below).
        try:
            async with asyncio.timeout(5):
                await overlap.wait()
        except TimeoutError:
            pass

        async def commit(tx: Any, enqueue_job: Any) -> None:
            # Counted out before the job's end commits, so the count never trails it.
            running[key] -= 1

        return await ctx.finalize(commit)

    try:
        worker = app.worker(concurrency=4, poll_interval=0.05)
        register_sync_handler(worker, work)
        items = [SyncInput(customer, n) for n in range(3) for customer in ("alice", "bob")]
        async with worker:
            handles = await app.enqueue_job_chains(None, sync, items)
            for handle in handles:
                await app.wait_for_chain(handle, timeout=30)
        assert highest == Counter({"alice": 1, "bob": 1})
        assert overlap.is_set(), "different customers never ran at once"
    finally:
        await app.close()


async def test_a_rate_limited_charge_comes_back_without_counting_an_attempt() -> None:
    app = await new_app()
    try:
        provider = PaymentProvider(refusals=2, retry_after=0.05)
        worker = app.worker(concurrency=2, poll_interval=0.05)
        register_charge_handlers(worker, provider)
        async with worker:
            handle = await app.enqueue_job_chain(None, charge, Charge(order_id=7))
            assert await app.wait_for_chain(handle, timeout=30) == Receipt("receipt-7")
        assert provider.calls == 3
        job = await app.get_job(handle.id)
        assert job is not None and job.attempt == 1
    finally:
        await app.close()
