"""procrastinate doing the work of the queuert benchmarks, on the same server.

Its schema is applied by procrastinate itself. A job counts as processed when
the worker's ``finish_job`` (status ``succeeded``) has committed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import procrastinate
import psycopg

from benchmarks.probe import Probe
from benchmarks.results import Result, rate

SYSTEM = "procrastinate"
QUEUE = "bench"
SETUP_BATCH = 1_000


class Bench:
    """An opened procrastinate application with the benchmark's no-op task."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))
        self.probe = Probe(0)
        probe_ref = self

        @self.app.task(name="bench", queue=QUEUE)
        async def noop(i: int) -> None:
            probe_ref.probe.started()

        self.task = noop

    async def __aenter__(self) -> Bench:
        await self.app.open_async()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.app.close_async()


async def install(url: str) -> None:
    async with Bench(url) as bench:
        await bench.app.schema_manager.apply_schema_async()


async def clear(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("TRUNCATE procrastinate_jobs RESTART IDENTITY CASCADE")


async def start_single(url: str, n: int) -> Result:
    """One ``defer_async`` per job (one statement, autocommit)."""
    async with Bench(url) as bench:
        began = time.perf_counter()
        for i in range(n):
            await bench.task.defer_async(i=i)
        seconds = time.perf_counter() - began
    return rate(SYSTEM, "start single", n, seconds, "chains/s")


async def _defer_batches(bench: Bench, n: int, batch: int) -> None:
    for start in range(0, n, batch):
        kwargs: list[dict[str, Any]] = [{"i": i} for i in range(start, min(n, start + batch))]
        await bench.task.batch_defer_async(*kwargs)


async def start_batched(url: str, n: int, batch: int) -> Result:
    """``batch`` jobs per ``batch_defer_async`` call (one statement, autocommit)."""
    async with Bench(url) as bench:
        began = time.perf_counter()
        await _defer_batches(bench, n, batch)
        seconds = time.perf_counter() - began
    return rate(SYSTEM, "start batched", n, seconds, "chains/s", batch=batch)


async def process(url: str, n: int, *, concurrency: int, timeout: float) -> Result:
    """Defer ``n`` jobs (setup), then run one worker at ``concurrency`` until every
    job's end is committed."""
    async with Bench(url) as bench:
        await _defer_batches(bench, n, SETUP_BATCH)
        probe = bench.probe = Probe(n)
        manager = bench.app.job_manager
        finish_job = manager.finish_job

        async def counted_finish_job(job: Any, status: Any, delete_job: bool) -> None:
            await finish_job(job, status, delete_job)
            if status == procrastinate.jobs.Status.SUCCEEDED:
                probe.ended()

        manager.finish_job = counted_finish_job  # type: ignore[method-assign]
        began = time.perf_counter()
        worker = asyncio.create_task(
            bench.app.run_worker_async(
                queues=[QUEUE], concurrency=concurrency, install_signal_handlers=False
            )
        )
        try:
            await probe.wait(timeout)
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
    left = await _unfinished(url)
    if left:
        raise RuntimeError(f"{left} procrastinate jobs did not succeed")
    return rate(
        SYSTEM,
        "process one-job chains",
        n,
        probe.elapsed,
        "jobs/s",
        seconds_with_worker_start=(probe.last_end or began) - began,
        concurrency=concurrency,
    )


async def _unfinished(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE status <> 'succeeded'"
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0
