"""Recurring schedules and global concurrency limits: ``python -m examples.schedules_and_limits``.

- ``nightly-report`` starts a ``report`` chain at 03:00 Paris time every day (a
  cron expression: needs ``queuert-core[cron]``) and ``heartbeat`` a ``ping``
  chain every five minutes; each slot starts one chain.
- ``sync-customer`` runs at most one job per customer at a time; different
  customers run in parallel.
- ``charge`` runs at most five jobs at once across every worker; when the payment
  provider answers "slow down", the job goes back to ``pending`` without counting
  an attempt, then continues with an ``upload`` step limited to two at once.

The demo runs on the in-memory adapter; the declarations are the same on SQLite or
PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import queuert


@dataclass
class ReportInput:
    day: date


@dataclass
class PingInput:
    pass


@dataclass
class SyncInput:
    customer_id: str
    n: int


@dataclass
class Charge:
    order_id: int


@dataclass
class Upload:
    receipt_id: str


@dataclass
class Receipt:
    id: str


report = queuert.chain("nightly-report", input=ReportInput, output=None)
ping = queuert.chain("heartbeat", input=PingInput, output=None)

# --8<-- [start:limits]
# At most 5 calls to the payment provider at once, whatever the number of workers.
charge = queuert.chain("charge", input=Charge, output=Receipt, concurrency_limit=5)

# At most one job per customer at a time; different customers run in parallel.
sync = queuert.chain(
    "sync-customer",
    input=SyncInput,
    output=None,
    concurrency_limit=1,
    concurrency_key=lambda item: item.customer_id,
)

# A further step of a chain may be limited too (per queue).
upload = charge.queue("upload", input=Upload, concurrency_limit=2)
# --8<-- [end:limits]


def declare_schedules(app: queuert.Queuert[Any]) -> None:
    """Declare the two schedules on ``app`` (its chains include ``report`` and ``ping``)."""
    # --8<-- [start:schedules]
    app.schedule(
        "nightly-report",
        report,
        cron="0 3 * * *",  # needs queuert-core[cron] (cronsim)
        timezone="Europe/Paris",
        input=lambda slot: ReportInput(day=slot.date()),  # or a plain value
        catch_up="latest",  # "latest" (default), "all" or "none"
    )
    app.schedule("heartbeat", ping, every=timedelta(minutes=5), input=PingInput())
    # --8<-- [end:schedules]


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited, retry after {retry_after} s")
        self.retry_after = retry_after


class PaymentProvider:
    """A stand-in for a remote API that refuses its first ``refusals`` calls."""

    def __init__(self, refusals: int, retry_after: float) -> None:
        self.refusals = refusals
        self.retry_after = retry_after
        self.calls = 0

    async def charge(self, item: Charge) -> Receipt:
        self.calls += 1
        if self.calls <= self.refusals:
            raise RateLimited(self.retry_after)
        return Receipt(f"receipt-{item.order_id}")


def register_charge_handlers(worker: queuert.Worker[Any], provider: PaymentProvider) -> None:
    # --8<-- [start:slow-down]
    @worker.handler(charge)
    async def handle(
        job: queuert.Job[Charge], ctx: queuert.JobContext[Any, Receipt]
    ) -> queuert.Continuation:
        try:
            receipt = await provider.charge(job.input)
        except RateLimited as exc:
            await ctx.reschedule(after=timedelta(seconds=exc.retry_after))  # ends the handler
        return await ctx.continue_with(upload, Upload(receipt.id))

    # --8<-- [end:slow-down]

    @worker.handler(upload)
    async def store(job: queuert.Job[Upload], ctx: queuert.JobContext[Any, Receipt]) -> Receipt:
        return await ctx.complete(Receipt(job.input.receipt_id))


SyncWork = Callable[[queuert.Job[SyncInput], queuert.JobContext[Any, None]], Awaitable[None]]


def register_sync_handler(worker: queuert.Worker[Any], work: SyncWork) -> None:
    @worker.handler(sync)
    async def sync_customer(
        job: queuert.Job[SyncInput], ctx: queuert.JobContext[Any, None]
    ) -> None:
        return await work(job, ctx)


async def new_app() -> queuert.Queuert[Any]:
    state = queuert.MemoryStateAdapter()
    await state.migrate()
    app = queuert.Queuert(
        state=state,
        notify=queuert.InProcessNotifyAdapter(),
        chains=[report, ping, charge, sync],
    )
    declare_schedules(app)
    return app


async def demo() -> None:
    app = await new_app()
    try:
        for info in await app.list_schedules():
            print(f"schedule {info.name}: next slot {info.next_slot}")
        provider = PaymentProvider(refusals=1, retry_after=0.2)
        worker = app.worker(concurrency=4)
        register_charge_handlers(worker, provider)
        async with worker:
            handle = await app.enqueue_job_chain(None, charge, Charge(order_id=1))
            receipt = await app.wait_for_chain(handle, timeout=30)
        job = await app.get_job(handle.id)
        assert job is not None
        print(f"{receipt.id} after {provider.calls} calls, attempts counted: {job.attempt}")
    finally:
        await app.close()


def main() -> None:
    asyncio.run(demo())


if __name__ == "__main__":
    main()
