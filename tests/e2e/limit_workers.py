"""Worker processes for the concurrency limit scenarios, and the chains they run.

::

    python -m tests.e2e.limit_workers --state URL --worker-name NAME \\
        --counter PATH [--concurrency N] [--work-ms N] [--poll-interval S]

Each handler, when it starts, counts itself as running in the shared counter
file ``PATH`` (under an exclusive file lock, so that every process sees one
count) and records the highest count seen, overall and per concurrency key; it
counts itself out inside its finalize transaction, before that transaction
commits, so the count never trails the database's. A worker prints ``READY``
once it is acquiring; SIGTERM stops it (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import signal
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import queuert
from queuert import Continuation, EnqueueJob, Job, JobContext

QUEUE_LIMIT = 3
KEY_LIMIT = 1


@dataclass
class Item:
    n: int
    key: str


@dataclass
class Seen:
    n: int


LIMITED = queuert.chain("e2e-limited", input=Item, output=Seen, concurrency_limit=QUEUE_LIMIT)
KEYED = queuert.chain(
    "e2e-keyed",
    input=Item,
    output=Seen,
    concurrency_limit=KEY_LIMIT,
    concurrency_key=lambda item: item.key,
)


@dataclass
class Tick:
    slot: str


TICKS = queuert.chain("e2e-ticks", input=Tick, output=Seen)
"""Started by the schedule :data:`EVERY_SECOND` of the worker processes."""
EVERY_SECOND = "e2e-every-second"

CHAINS = [LIMITED, KEYED, TICKS]


def declare_schedule(app: queuert.Queuert[Any]) -> None:
    """The one-second schedule the worker processes run (every missed slot caught up,
    so that a slow process leaves no gap)."""
    app.schedule(
        EVERY_SECOND,
        TICKS,
        every=timedelta(seconds=1),
        input=lambda slot: Tick(slot=slot.isoformat()),
        catch_up="all",
    )


# -- the shared counter ----------------------------------------------------------------------


@contextmanager
def _locked(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("a+") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            file.seek(0)
            text = file.read()
            data: dict[str, Any] = (
                json.loads(text) if text else {"running": {}, "max": {}, "total": 0}
            )
            yield data
            file.seek(0)
            file.truncate()
            file.write(json.dumps(data))
            file.flush()
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def enter(path: Path, key: str) -> None:
    with _locked(path) as data:
        running = data["running"]
        running[key] = running.get(key, 0) + 1
        running["*"] = running.get("*", 0) + 1
        for name in (key, "*"):
            data["max"][name] = max(data["max"].get(name, 0), running[name])


def leave(path: Path, key: str) -> None:
    with _locked(path) as data:
        data["running"][key] -= 1
        data["running"]["*"] -= 1
        data["total"] += 1


def read_counter(path: Path) -> dict[str, Any]:
    """The counter's state: ``max`` (highest running count per key, ``"*"`` for all)
    and ``total`` (handlers that counted themselves out)."""
    if not path.exists():
        return {"running": {}, "max": {}, "total": 0}
    with _locked(path) as data:
        return data


# -- the worker subprocess ------------------------------------------------------------------


def _handler(counter: Path, work_ms: int) -> Any:
    async def handle(job: Job[Item], ctx: JobContext[Any, Seen]) -> Seen | Continuation:
        key = job.input.key
        enter(counter, key)
        await asyncio.sleep(work_ms / 1000)

        async def commit(tx: Any, enqueue_job: EnqueueJob[Seen]) -> Seen:
            leave(counter, key)
            return Seen(n=job.input.n)

        return await ctx.finalize(commit)

    return handle


async def run_worker_process(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.limit_workers")
    parser.add_argument("--state", required=True)
    parser.add_argument("--worker-name", required=True)
    parser.add_argument("--counter", required=True, type=Path)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--work-ms", type=int, default=100)
    parser.add_argument("--poll-interval", type=float, default=0.2)
    parser.add_argument("--schedule", action="store_true")
    args = parser.parse_args(argv)

    app = await queuert.Queuert.from_url(state=args.state, chains=CHAINS)
    if args.schedule:
        declare_schedule(app)
    worker = app.worker(
        concurrency=args.concurrency,
        poll_interval=args.poll_interval,
        worker_id=args.worker_name,
        shutdown_timeout=5.0,
    )
    for chain in (LIMITED, KEYED):
        worker.handler(chain)(_handler(args.counter, args.work_ms))

    @worker.handler(TICKS)
    async def tick(job: Job[Tick], ctx: JobContext[Any, Seen]) -> Seen:
        return Seen(n=0)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await worker.start()
    print("READY", flush=True)
    await stop.wait()
    await worker.stop(timeout=5.0)
    await app.close()
    return 0


# -- the parent's side ------------------------------------------------------------------------


@asynccontextmanager
async def limit_workers(
    count: int, *, state: str, counter: Path, log_dir: Path, **options: Any
) -> AsyncIterator[None]:
    """Run ``count`` worker processes until the block exits; each must have printed
    ``READY`` before the block starts and must exit 0 after SIGTERM."""
    # Imported here: the worker processes import this module and need none of it.
    from tests.e2e.worker_processes import worker_processes

    args = [
        f"--{name.replace('_', '-')}" + ("" if value is True else f"={value}")
        for name, value in options.items()
    ]
    async with worker_processes(
        "tests.e2e.limit_workers",
        count,
        args_of=lambda i: [
            f"--state={state}",
            f"--worker-name=w{i}",
            f"--counter={counter}",
            *args,
        ],
        log_dir=log_dir,
        log_prefix="limit-worker",
    ):
        yield


if __name__ == "__main__":
    sys.exit(asyncio.run(run_worker_process()))
