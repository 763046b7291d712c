"""Notify latency: enqueue-to-handler-start p50 and p99 over 1,000 jobs, each
enqueued while the worker is idle, for every notifier and for polling.

State is PostgreSQL for every notifier; the worker runs in this process (the
in-process notifier reaches no other), with the enqueuer idle while it waits.

    hatch run bench:latency
    hatch run bench:latency --jobs 200 --notifiers inprocess,postgres
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from pathlib import Path

from benchmarks import pg, queuert_runs
from benchmarks.chains import SCENARIOS, Stamped, register
from benchmarks.cli import base_parser, csv, run, wait_quiet
from benchmarks.probe import Probe, attach_probe, percentile
from benchmarks.results import (
    Result,
    failed,
    format_value,
    print_table,
    source,
    timestamp,
    write_json,
)

NOTIFIERS = ("inprocess", "postgres", "redis", "polling")
REDIS_URL = os.environ.get("QUEUERT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--jobs", type=int, default=1_000, help="jobs per notifier")
    parser.add_argument(
        "--polling-jobs", type=int, default=None, help="jobs for polling (default --jobs)"
    )
    parser.add_argument("--notifiers", type=csv, default=list(NOTIFIERS))
    parser.add_argument("--poll-interval", type=float, default=1.0, help="worker poll (s)")
    parser.add_argument("--concurrency", type=int, default=10)
    return parser.parse_args(argv)


def notify_setting(name: str, pg_url: str) -> str:
    return {
        "inprocess": "inprocess://",
        "postgres": pg_url,
        "redis": f"{REDIS_URL}?prefix=bench{os.getpid()}:",
        "polling": "none",
    }[name]


async def measure(name: str, args: argparse.Namespace, pg_url: str, workdir: Path) -> list[Result]:
    jobs = args.jobs if name != "polling" else (args.polling_jobs or args.jobs)
    store = await queuert_runs.open_store(
        "postgres",
        tag=f"lat_{name}",
        workdir=workdir,
        pg_url=pg_url,
        notify=notify_setting(name, pg_url),
    )
    app = store.app
    probe = Probe(jobs)
    attach_probe(app, probe)
    started = asyncio.Event()
    latencies: list[float] = []

    def on_latency(seconds: float) -> None:
        latencies.append(seconds * 1000)
        started.set()

    worker = app.worker(concurrency=args.concurrency, poll_interval=args.poll_interval)
    register(worker, "stamped", probe, on_latency=on_latency)
    chain = SCENARIOS["stamped"]
    began = time.perf_counter()
    try:
        await worker.start()
        await asyncio.sleep(0.2)
        for i in range(jobs):
            # An idle worker: the previous job's end is committed and some time passed.
            # With polling the gap is drawn over a whole poll interval, so the enqueue
            # falls at a uniformly random point of the worker's poll cycle.
            gap = (
                random.uniform(0, args.poll_interval)
                if name == "polling"
                else random.uniform(0.005, 0.02)
            )
            await asyncio.sleep(gap)
            started.clear()
            probe.target = i + 1
            probe.done.clear()
            await app.enqueue_job_chain(None, chain, Stamped(i, time.monotonic()))
            async with asyncio.timeout(max(30.0, 5 * args.poll_interval)):
                await started.wait()
                await probe.done.wait()  # the job's end committed: the worker is idle
        seconds = time.perf_counter() - began
        details = {
            "jobs": jobs,
            "notifier": notify_setting(name, pg_url).split("?")[0]
            if name != "postgres"
            else "postgresql LISTEN/NOTIFY",
            "poll_interval_s": args.poll_interval,
            "mean_ms": round(sum(latencies) / len(latencies), 3),
            "max_ms": round(max(latencies), 3),
        }
        results = [
            Result(name, "p50", percentile(latencies, 50), "ms", jobs, seconds, details),
            Result(name, "p99", percentile(latencies, 99), "ms", jobs, seconds, details),
        ]
    except Exception as exc:
        results = [failed(name, "p50", "ms", exc), failed(name, "p99", "ms", exc)]
    finally:
        await worker.stop()
        await store.close()
    for r in results:
        print(f"  {name:<10} {r.metric}: {r.value:,.2f} ms", flush=True)
    return results


async def main(args: argparse.Namespace) -> None:
    problem = await pg.reachable(pg.server_url())
    if problem:
        print(f"the latency benchmark needs PostgreSQL: {problem}")
        return
    measured_source = source()  # what the figures measure, before anything can change
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="queuert-latency-") as tmp:
        async with pg.fresh_database("queuert_latency") as url:
            for name in NOTIFIERS:
                if name in args.notifiers:
                    await wait_quiet()
                    results += await measure(name, args, url, Path(tmp))
    notifiers = [n for n in NOTIFIERS if n in args.notifiers]
    print_table(
        "Enqueue-to-handler-start latency, idle worker (PostgreSQL state)",
        ["p50", "p99"],
        notifiers,
        {(r.metric, r.system): format_value(r.value, r.unit) for r in results},
    )
    path = write_json(
        {
            "benchmark": "notify latency",
            "settings": {k: v for k, v in vars(args).items() if k != "out_dir"},
            "source": measured_source,
            "results": [r.to_json() for r in results],
        },
        f"{timestamp()}-latency",
        Path(args.out_dir) if args.out_dir else None,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    arguments = parse()
    run(lambda: main(arguments), arguments)
