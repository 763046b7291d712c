"""Scale runs on PostgreSQL: the process rate with a million completed jobs in the
table, 1, 2 and 4 worker processes, enqueue-to-start latency under a steady load,
and the RSS of a worker process after 10,000 and 100,000 jobs.

    hatch run bench:scale
    hatch run bench:scale --parts processes,latency --process-n 5000
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks import pg, queuert_runs
from benchmarks.chains import SCENARIOS, Stamped
from benchmarks.cli import base_parser, csv, run, wait_quiet
from benchmarks.probe import percentile
from benchmarks.results import (
    Result,
    failed,
    format_value,
    print_table,
    source,
    timestamp,
    write_json,
)
from benchmarks.workers import WorkerProcess, span, wait_for_total

PARTS = ("completed", "processes", "latency", "rss")
SYSTEM = "postgres"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--parts", type=csv, default=list(PARTS), help=",".join(PARTS))
    parser.add_argument("--n", type=int, default=5_000, help="chains processed beside 1M rows")
    parser.add_argument("--completed", type=int, default=1_000_000, help="completed rows")
    parser.add_argument("--process-n", type=int, default=20_000, help="chains per process run")
    parser.add_argument("--processes", type=csv, default=["1", "2", "4"])
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rate", type=float, default=1_000, help="steady load, jobs/s")
    parser.add_argument("--duration", type=float, default=10, help="steady load, seconds")
    parser.add_argument("--producers", type=int, default=4, help="concurrent enqueuers")
    parser.add_argument("--rss-jobs", type=int, default=100_000)
    parser.add_argument("--rss-first", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=1_800)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per figure of the completed and processes parts"
    )
    return parser.parse_args(argv)


async def insert_completed(state_url: str, schema: str, count: int) -> float:
    """Insert ``count`` completed one-job chains of another chain name with one
    INSERT ... SELECT (setup, not measured);
    returns the seconds it took, ANALYZE included."""
    dsn = state_url.split("?", 1)[0]
    conn = await asyncpg.connect(dsn)
    began = time.perf_counter()
    try:
        await conn.execute(
            f"""
            INSERT INTO "{schema}".jobs (
                id, chain_id, chain_name, queue, position, status, input, attempt,
                max_attempts, priority, scheduled_at, created_at, updated_at, output,
                completed_at)
            SELECT s.id, s.id, 'bench-history', 'bench-history', 0, 'completed',
                   json_build_object('i', s.g), 1, 5, 0, s.t, s.t, s.t, '{{"ok": true}}', s.t
            FROM (
                SELECT g,
                       '00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0') AS id,
                       now() - interval '1 day' + g * interval '1 millisecond' AS t
                FROM generate_series(1, $1) AS g
            ) s
            """,
            count,
        )
        await conn.execute(f'VACUUM ANALYZE "{schema}".jobs')
    finally:
        await conn.close()
    return time.perf_counter() - began


async def part_completed(args: argparse.Namespace, url: str, workdir: Path) -> list[Result]:
    """The process rate on an empty table and on one holding ``--completed`` completed
    jobs, alternately, ``--repeat`` times each (the median of each is kept)."""
    full = await queuert_runs.open_store(
        "postgres", tag="completed_full", workdir=workdir, pg_url=url
    )
    runs: dict[str, list[Result]] = {"empty": [], "full": []}
    try:
        assert full.state_url is not None
        setup_s = await insert_completed(full.state_url, "bench_completed_full", args.completed)
        for round_ in range(args.repeat):
            await wait_quiet()
            empty = await queuert_runs.open_store(
                "postgres", tag=f"completed_empty{round_}", workdir=workdir, pg_url=url
            )
            try:
                runs["empty"].append(
                    await queuert_runs.process(
                        empty, args.n, "one", concurrency=args.concurrency, timeout=args.timeout
                    )
                )
            finally:
                await empty.close()
            await wait_quiet()
            runs["full"].append(
                await queuert_runs.process(
                    full, args.n, "one", concurrency=args.concurrency, timeout=args.timeout
                )
            )
    except Exception as exc:
        return [failed(SYSTEM, "process with completed jobs", "jobs/s", exc)]
    finally:
        await full.close()
    results = []
    labels = {"empty": "process, empty table", "full": f"process, {args.completed:,} completed"}
    for key, label in labels.items():
        ordered = sorted(runs[key], key=lambda r: r.value)
        chosen = ordered[(len(ordered) - 1) // 2]
        chosen.metric = label
        chosen.details["runs"] = [round(r.value, 1) for r in runs[key]]
        if key == "full":
            chosen.details["setup_seconds"] = round(setup_s, 1)
        print(f"  {label:<40} {chosen.value:>10,.0f} jobs/s  runs {chosen.details['runs']}")
        results.append(chosen)
    results.append(
        Result(
            SYSTEM,
            f"{args.completed:,} completed / empty",
            results[1].value / results[0].value,
            "x",
        )
    )
    return results


async def _processes_once(
    args: argparse.Namespace, url: str, workdir: Path, k: int, tag: str
) -> Result:
    store = await queuert_runs.open_store("postgres", tag=tag, workdir=workdir, pg_url=url)
    workers: list[WorkerProcess] = []
    try:
        await queuert_runs.enqueue_setup(store.app, SCENARIOS["one"], args.process_n)
        assert store.state_url is not None
        workers = [
            await WorkerProcess.spawn(
                state_url=store.state_url,
                notify_url=store.notify_url,
                scenario="one",
                concurrency=args.concurrency,
                uvloop=args.uvloop,
            )
            for _ in range(k)
        ]
        await wait_quiet()
        for w in workers:
            w.go()
        await wait_for_total(workers, args.process_n, args.timeout)
        reports = [await w.stop() for w in workers]
        workers = []
        seconds = span(reports)
        return Result(
            SYSTEM,
            f"{k} worker process{'es' if k > 1 else ''}",
            args.process_n / seconds,
            "jobs/s",
            args.process_n,
            seconds,
            {"per_process": [r["count"] for r in reports], "concurrency": args.concurrency},
        )
    finally:
        for w in workers:
            await w.stop()
        await store.close()


async def part_processes(args: argparse.Namespace, url: str, workdir: Path) -> list[Result]:
    """``--process-n`` chains run by 1, 2 and 4 worker processes (``--processes``),
    the counts interleaved, ``--repeat`` times each (the median of each is kept)."""
    counts = [int(text) for text in args.processes]
    runs: dict[int, list[Result]] = {k: [] for k in counts}
    try:
        for round_ in range(args.repeat):
            for k in counts:
                runs[k].append(await _processes_once(args, url, workdir, k, f"procs{k}_{round_}"))
    except Exception as exc:
        return [failed(SYSTEM, "worker processes", "jobs/s", exc)]
    results = []
    for k in counts:
        ordered = sorted(runs[k], key=lambda r: r.value)
        chosen = ordered[(len(ordered) - 1) // 2]
        chosen.details["runs"] = [round(r.value, 1) for r in runs[k]]
        print(f"  {chosen.metric:<40} {chosen.value:>10,.0f} jobs/s  runs {chosen.details['runs']}")
        results.append(chosen)
    if len(results) > 1 and results[0].value:
        results.append(
            Result(
                SYSTEM,
                f"{counts[-1]} processes / {counts[0]}",
                results[-1].value / results[0].value,
                "x",
            )
        )
    return results


async def part_latency(args: argparse.Namespace, url: str, workdir: Path) -> list[Result]:
    store = await queuert_runs.open_store("postgres", tag="steady", workdir=workdir, pg_url=url)
    total = int(args.rate * args.duration)
    worker: WorkerProcess | None = None
    try:
        assert store.state_url is not None
        worker = await WorkerProcess.spawn(
            state_url=store.state_url,
            notify_url=store.notify_url,
            scenario="stamped",
            concurrency=args.concurrency,
            uvloop=args.uvloop,
        )
        worker.go()
        await asyncio.sleep(0.5)  # let it subscribe and go idle
        app = store.app
        chain = SCENARIOS["stamped"]
        began = time.monotonic()
        next_index = 0
        late: list[float] = []

        async def produce() -> None:
            nonlocal next_index
            while next_index < total:
                i = next_index
                next_index += 1
                due = began + i / args.rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    late.append(-delay)
                await app.enqueue_job_chain(None, chain, Stamped(i, time.monotonic()))

        await asyncio.gather(*(produce() for _ in range(args.producers)))
        produced_s = time.monotonic() - began
        await wait_for_total([worker], total, args.timeout)
        report = await worker.stop()
        worker = None
        latencies_ms = [s * 1000 for s in report["latencies"]]
        details: dict[str, Any] = {
            "jobs": total,
            "offered_rate": args.rate,
            "achieved_rate": round(total / produced_s, 1),
            "producers": args.producers,
            "enqueues_behind_schedule": len(late),
            "max_ms_behind_schedule": round(max(late, default=0) * 1000, 1),
            "max_ms": round(max(latencies_ms), 2),
            "mean_ms": round(sum(latencies_ms) / len(latencies_ms), 2),
        }
        results = [
            Result(
                SYSTEM,
                f"steady {args.rate:,.0f}/s: start latency p50",
                percentile(latencies_ms, 50),
                "ms",
                total,
                produced_s,
                details,
            ),
            Result(
                SYSTEM,
                f"steady {args.rate:,.0f}/s: start latency p99",
                percentile(latencies_ms, 99),
                "ms",
                total,
                produced_s,
                details,
            ),
        ]
    except Exception as exc:
        results = [failed(SYSTEM, "steady load latency", "ms", exc)]
    finally:
        if worker is not None:
            await worker.stop()
        await store.close()
    for r in results:
        print(f"  {r.metric:<40} {r.value:>10,.2f} ms", flush=True)
    return results


async def part_rss(args: argparse.Namespace, url: str, workdir: Path) -> list[Result]:
    store = await queuert_runs.open_store("postgres", tag="rss", workdir=workdir, pg_url=url)
    worker: WorkerProcess | None = None
    try:
        await queuert_runs.enqueue_setup(store.app, SCENARIOS["one"], args.rss_jobs)
        assert store.state_url is not None
        worker = await WorkerProcess.spawn(
            state_url=store.state_url,
            notify_url=store.notify_url,
            scenario="one",
            concurrency=args.concurrency,
            rss_at=[args.rss_first, args.rss_jobs],
            uvloop=args.uvloop,
        )
        worker.go()
        await wait_for_total([worker], args.rss_jobs, args.timeout)
        report = await worker.stop()
        worker = None
        at = {int(k): v for k, v in report["rss_at"].items()}
        first, last = at.get(args.rss_first, float("nan")), at.get(args.rss_jobs, float("nan"))
        results = [
            Result(SYSTEM, f"RSS after {args.rss_first:,} jobs", first, "MB", args.rss_first),
            Result(SYSTEM, f"RSS after {args.rss_jobs:,} jobs", last, "MB", args.rss_jobs),
            Result(
                SYSTEM,
                "RSS growth",
                last - first,
                "MB",
                details={"rate_jobs_per_s": round(args.rss_jobs / span([report]), 1)},
            ),
        ]
    except Exception as exc:
        results = [failed(SYSTEM, "RSS", "MB", exc)]
    finally:
        if worker is not None:
            await worker.stop()
        await store.close()
    for r in results:
        print(f"  {r.metric:<40} {r.value:>10,.1f} MB", flush=True)
    return results


async def main(args: argparse.Namespace) -> None:
    problem = await pg.reachable(pg.server_url())
    if problem:
        print(f"scale runs need PostgreSQL: {problem}")
        return
    measured_source = source()  # what the figures measure, before anything can change
    server = await pg.server_settings(pg.server_url())
    results: list[Result] = []
    parts = {
        "completed": part_completed,
        "processes": part_processes,
        "latency": part_latency,
        "rss": part_rss,
    }
    with tempfile.TemporaryDirectory(prefix="queuert-scale-") as tmp:
        async with pg.fresh_database("queuert_scale") as url:
            for name, part in parts.items():
                if name in args.parts:
                    cpu = await wait_quiet()
                    print(f"{name}: (machine CPU {cpu:.0f}% before)", flush=True)
                    results += await part(args, url, Path(tmp))
    print_table(
        "Scale runs on PostgreSQL",
        [r.metric for r in results],
        ["value"],
        {(r.metric, "value"): format_value(r.value, r.unit) for r in results},
    )
    path = write_json(
        {
            "benchmark": "scale",
            "settings": {k: v for k, v in vars(args).items() if k != "out_dir"},
            "postgres_server": server,
            "source": measured_source,
            "results": [r.to_json() for r in results],
        },
        f"{timestamp()}-scale",
        Path(args.out_dir) if args.out_dir else None,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    arguments = parse()
    run(lambda: main(arguments), arguments)
