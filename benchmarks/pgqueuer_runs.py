"""PgQueuer doing the work of the queuert benchmarks, on the same server.

Its schema is installed by PgQueuer itself with its defaults (every table
logged). A job counts as processed when PgQueuer's own batched status write
(``log_jobs``: the job leaves the queue table for the log table) has committed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager

from benchmarks.probe import Probe
from benchmarks.results import Result, rate

SYSTEM = "pgqueuer"
ENTRYPOINT = "bench"
SETUP_BATCH = 1_000


def _payload(i: int) -> bytes:
    return b'{"i": %d}' % i


async def install(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await Queries(AsyncpgDriver(conn)).install()
    finally:
        await conn.close()


async def clear(url: str) -> None:
    """Empty the queue, log and statistics tables."""
    conn = await asyncpg.connect(url)
    try:
        queries = Queries(AsyncpgDriver(conn))
        await queries.clear_queue()
        await queries.clear_queue_log()
        await queries.clear_statistics_log()
    finally:
        await conn.close()


async def start_single(url: str, n: int, *, app_tx: bool) -> Result:
    """One ``enqueue`` per committed transaction on one connection: autocommit, or
    inside ``conn.transaction()`` with ``app_tx``."""
    conn = await asyncpg.connect(url)
    try:
        queries = Queries(AsyncpgDriver(conn))
        began = time.perf_counter()
        if app_tx:
            for i in range(n):
                async with conn.transaction():
                    await queries.enqueue(ENTRYPOINT, _payload(i), 0)
        else:
            for i in range(n):
                await queries.enqueue(ENTRYPOINT, _payload(i), 0)
        seconds = time.perf_counter() - began
    finally:
        await conn.close()
    metric = "start single (app tx)" if app_tx else "start single"
    return rate(SYSTEM, metric, n, seconds, "chains/s")


async def _enqueue_batches(queries: Queries, n: int, batch: int) -> None:
    for start in range(0, n, batch):
        size = min(n, start + batch) - start
        await queries.enqueue(
            [ENTRYPOINT] * size, [_payload(i) for i in range(start, start + size)], [0] * size
        )


async def start_batched(url: str, n: int, batch: int) -> Result:
    """``batch`` jobs per ``enqueue`` call (one statement, autocommit)."""
    conn = await asyncpg.connect(url)
    try:
        queries = Queries(AsyncpgDriver(conn))
        began = time.perf_counter()
        await _enqueue_batches(queries, n, batch)
        seconds = time.perf_counter() - began
    finally:
        await conn.close()
    return rate(SYSTEM, "start batched", n, seconds, "chains/s", batch=batch)


async def process(
    url: str, n: int, *, batch_size: int, max_concurrent_tasks: int, timeout: float
) -> Result:
    """Enqueue ``n`` jobs (setup), then run one QueueManager (one connection, as
    PgQueuer's own benchmark does) until every job's end is committed."""
    setup = await asyncpg.connect(url)
    try:
        await _enqueue_batches(Queries(AsyncpgDriver(setup)), n, SETUP_BATCH)
    finally:
        await setup.close()
    probe = Probe(n)
    conn = await asyncpg.connect(url)
    queries = Queries(AsyncpgDriver(conn))
    log_jobs = queries.log_jobs

    async def counted_log_jobs(job_status: list[Any]) -> None:
        await log_jobs(job_status)
        probe.ended(sum(1 for _, status, _ in job_status if status == "successful"))

    queries.log_jobs = counted_log_jobs  # type: ignore[method-assign]
    qm = QueueManager(queries)

    @qm.entrypoint(ENTRYPOINT)
    async def noop(job: Job) -> None:
        probe.started()

    began = time.perf_counter()
    runner = asyncio.create_task(
        qm.run(batch_size=batch_size, max_concurrent_tasks=max_concurrent_tasks or None)
    )
    try:
        await probe.wait(timeout)
    finally:
        qm.shutdown.set()
        await asyncio.wait_for(runner, 30)
        if not conn.is_closed():
            await conn.close()
    left = await _queued(url)
    if left:
        raise RuntimeError(f"{left} PgQueuer jobs are still in the queue table")
    return rate(
        SYSTEM,
        "process one-job chains",
        n,
        probe.elapsed,
        "jobs/s",
        seconds_with_worker_start=(probe.last_end or began) - began,
        batch_size=batch_size,
        max_concurrent_tasks=max_concurrent_tasks or None,
    )


async def _queued(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        queries = Queries(AsyncpgDriver(conn))
        return int(await conn.fetchval(f"SELECT count(*) FROM {queries.qbe.settings.queue_table}"))
    finally:
        await conn.close()
