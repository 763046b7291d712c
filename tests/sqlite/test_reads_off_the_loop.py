"""A read without a transaction runs off the event loop: other tasks keep running
while it does (a listing over a large table took the loop for its whole length)."""

from __future__ import annotations

import asyncio

from queuert.records import JobFilter
from queuert_sqlite import SqliteStateAdapter
from tests.sqlite.helpers import new_job

ROWS = 10_000


async def test_other_tasks_run_while_a_long_read_does(adapter: SqliteStateAdapter) -> None:
    for _ in range(ROWS // 1000):
        await adapter.create_jobs(tx=None, jobs=[new_job() for _ in range(1000)])
    await adapter.get_job(tx=None, job_id="none")  # the reader is open
    ticks = 0
    reading = True

    async def ticker() -> None:
        nonlocal ticks
        while reading:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = ticks
    page = await adapter.list_jobs(tx=None, filter=JobFilter(), after=None, limit=ROWS)
    during = ticks - started
    reading = False
    await task
    assert len(page.items) == ROWS
    # Run on the loop, the read lets the ticker run at most once (when it starts);
    # off the loop, the ticker keeps running while the thread reads 10,000 rows.
    assert during > 3, during
