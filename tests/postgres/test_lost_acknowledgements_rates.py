"""Lost commit acknowledgements of a rate-limited acquisition and of a schedule's
slot start: the retry reports what the first try did (its jobs run once; the
slot counts as started by this call), not an error or a refusal made by the
first try's own writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

import queuert
from queuert.errors import TransientStateError
from queuert.rate_records import RateAcquisition
from queuert.records import NewJob
from queuert.schedules import start_slot
from queuert_postgres import PostgresStateAdapter


@dataclass
class Num:
    n: int


rated = queuert.chain("lost-acks-rated", input=Num, output=Num, rate_limit="100/s")


class RatedAckLostOnce(PostgresStateAdapter):
    """Commits the first rate-limited acquisition that leases jobs, then reports it lost."""

    lost = 0

    async def acquire_rate_limited_jobs(self, **kwargs: Any) -> RateAcquisition:
        result = await super().acquire_rate_limited_jobs(**kwargs)
        if kwargs["tx"] is None and result.jobs and not self.lost:
            self.lost += 1
            raise TransientStateError("connection lost before the commit was acknowledged")
        return result


async def test_jobs_of_a_retried_rated_acquisition_whose_first_try_committed_are_run(
    pool: asyncpg.Pool[asyncpg.Record], schema: str
) -> None:
    state = RatedAckLostOnce(pool, schema=schema)
    app = queuert.Queuert(state=state, chains=[rated])
    await app.migrate()
    # Leases far longer than the test: a job leased to nobody would wait for it.
    worker = app.worker(concurrency=4, poll_interval=0.05, lease_ms=120_000)

    @worker.handler(rated)
    async def run(job: queuert.Job[Num], ctx: queuert.JobContext[Any, Num]) -> Any:
        return await ctx.complete(Num(job.input.n + 1))

    try:
        handles = await app.enqueue_job_chains(None, rated, [Num(1), Num(2)])
        async with worker:
            outputs = [await app.wait_for_chain(h, timeout=15) for h in handles]
        assert state.lost == 1
        assert outputs == [Num(2), Num(3)]
        for h in handles:
            job = await app.get_job(h.id)
            assert job is not None and job.attempt == 1
    finally:
        await app.close()


ticks = queuert.chain("lost-acks-ticks", input=Num, output=Num)


class SlotAckLostOnce(PostgresStateAdapter):
    """Commits the first slot start, then reports it lost."""

    lost = 0

    async def start_scheduled_chain(
        self, *, tx: Any, schedule: str, slot_time: datetime, job: NewJob
    ) -> bool:
        started = await super().start_scheduled_chain(
            tx=tx, schedule=schedule, slot_time=slot_time, job=job
        )
        if tx is None and started and not self.lost:
            self.lost += 1
            raise TransientStateError("connection lost before the commit was acknowledged")
        return started


async def test_a_retried_slot_start_whose_first_try_committed_reports_it_started(
    pool: asyncpg.Pool[asyncpg.Record], schema: str
) -> None:
    state = SlotAckLostOnce(pool, schema=schema)
    app = queuert.Queuert(state=state, chains=[ticks])
    await app.migrate()
    app.schedule("lost-acks-every-minute", ticks, every=timedelta(minutes=1), input=Num(0))
    slot = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    try:
        started = await start_slot(app, app.schedules["lost-acks-every-minute"], slot)
        assert state.lost == 1
        assert started, "the slot this call started was reported as started by another"
        (chain,) = (await app.list_chains()).items
        recorded = await app.schedule_slot(chain.id)
        assert recorded is not None and recorded.slot_time == slot
        assert not await start_slot(app, app.schedules["lost-acks-every-minute"], slot)
    finally:
        await app.close()
