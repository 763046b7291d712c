"""Worker processes for the rate limit scenario, and the chain they run.

::

    python -m tests.e2e.rate_workers --state URL --worker-name NAME \\
        --starts-dir DIR [--concurrency N] [--poll-interval S]

Each handler, when it starts, appends one line (flushed) to
``DIR/<worker name>.txt``: the time its job started as the store recorded it
(the acquired record's ``updated_at``, seconds since the epoch), then its own
clock reading (``time.time()``); then it completes its job. A worker
prints ``READY`` once it is acquiring; SIGTERM stops it (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import queuert
from queuert import Job, JobContext

RATE = 50
"""Starts per second of :data:`RATED`."""


@dataclass
class Call:
    n: int


@dataclass
class Called:
    n: int


RATED = queuert.chain("e2e-rated", input=Call, output=Called, rate_limit=f"{RATE}/s")


@dataclass
class Starts:
    """Every start the handlers recorded, each list in time order."""

    stored: list[float]
    """As the store recorded them (the acquisitions' clock readings)."""
    handler: list[float]
    """As the handlers read their own clock when they ran."""


def read_starts(starts_dir: Path) -> Starts:
    """Every start the handlers recorded."""
    lines = [
        line.split()
        for path in sorted(starts_dir.glob("*.txt"))
        for line in path.read_text().splitlines()
        if line
    ]
    return Starts(
        stored=sorted(float(stored) for stored, _ in lines),
        handler=sorted(float(handler) for _, handler in lines),
    )


async def run_worker_process(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.rate_workers")
    parser.add_argument("--state", required=True)
    parser.add_argument("--worker-name", required=True)
    parser.add_argument("--starts-dir", required=True, type=Path)
    parser.add_argument("--concurrency", type=int, default=RATE)
    parser.add_argument("--poll-interval", type=float, default=0.1)
    args = parser.parse_args(argv)

    app = await queuert.Queuert.from_url(state=args.state, chains=[RATED])
    worker = app.worker(
        concurrency=args.concurrency,
        poll_interval=args.poll_interval,
        worker_id=args.worker_name,
        shutdown_timeout=5.0,
    )
    starts = (args.starts_dir / f"{args.worker_name}.txt").open("a", buffering=1)

    @worker.handler(RATED)
    async def call(job: Job[Call], ctx: JobContext[Any, Called]) -> Called:
        # The acquired record's updated_at is the clock reading the acquisition wrote
        # with the lease: the same instant the store counts the start at.
        stored = job.record.updated_at.timestamp()
        starts.write(f"{stored:.6f} {time.time():.6f}\n")
        return Called(n=job.input.n)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await worker.start()
    print("READY", flush=True)
    await stop.wait()
    await worker.stop(timeout=5.0)
    await app.close()
    starts.close()
    return 0


@asynccontextmanager
async def rate_workers(
    count: int, *, state: str, starts_dir: Path, log_dir: Path
) -> AsyncIterator[None]:
    """Run ``count`` worker processes until the block exits; each must have printed
    ``READY`` before the block starts and must exit 0 after SIGTERM."""
    # Imported here: the worker processes import this module and need none of it.
    from tests.e2e.worker_processes import worker_processes

    async with worker_processes(
        "tests.e2e.rate_workers",
        count,
        args_of=lambda i: [f"--state={state}", f"--worker-name=w{i}", f"--starts-dir={starts_dir}"],
        log_dir=log_dir,
        log_prefix="rate-worker",
    ):
        yield


if __name__ == "__main__":
    sys.exit(asyncio.run(run_worker_process()))
