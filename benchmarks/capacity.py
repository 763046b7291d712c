"""Processing capacity: start single, start batched, process (one worker at
concurrency 10), full phase path and three-step chains, for every queuert adapter
and, on the same PostgreSQL server in the same run, PgQueuer, procrastinate,
Graphile Worker (when Node.js is installed) and the server's commit ceiling
(``pgbench -N``, when pgbench is installed).

    hatch run bench:all                 # N = 5,000
    hatch run bench:all --n 1000        # quicker
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from benchmarks import (
    graphile_runs,
    pg,
    pgbench_runs,
    pgqueuer_runs,
    procrastinate_runs,
    queuert_runs,
)
from benchmarks.cli import base_parser, csv, measure, median_run, run
from benchmarks.results import Result, format_value, print_table, source, timestamp, write_json

SYSTEMS = ("memory", "sqlite", "postgres", "pgqueuer", "procrastinate", "graphile", "pgbench")
PGQ_DEFAULTS = "process (PgQueuer run() defaults)"
GW_FAST = "process (Graphile local queue 500 + batched completion)"
"""Graphile Worker at concurrency 10 with ``localQueue.size=500`` and
``completeJobBatchDelay=0``, the settings its documentation gives for throughput."""
CEILING = pgbench_runs.commit_metric(10)
CEILING_ONE = pgbench_runs.commit_metric(1)
"""PgQueuer with ``batch_size=10`` and no ``max_concurrent_tasks``: a job's slot is
free when its handler returns, its completion is written later in batches."""
METRICS = [
    "start single",
    "start single (app tx)",
    "start single (adapter tx)",
    "start batched",
    "start batched (app tx)",
    "process one-job chains",
    queuert_runs.UNQUEUED,
    PGQ_DEFAULTS,
    GW_FAST,
    "full phase path",
    "process three-step chains",
    "process one-job chains (limit 10)",
    "process one-job chains (100 keys limit 1)",
    "process one-job chains (rate 1000000/s)",
    CEILING,
    CEILING_ONE,
]
UNITS = {m: ("jobs/s" if m.startswith(("process", "full")) else "chains/s") for m in METRICS}
UNITS[CEILING] = UNITS[CEILING_ONE] = "commits/s"

# Figures the issue quotes for the peers, measured elsewhere: context, not targets.
REFERENCE = {
    ("pgqueuer", PGQ_DEFAULTS): 5_106,
    ("procrastinate", "process one-job chains"): 470,
    ("pgqueuer", "start single"): 1_977,
    ("procrastinate", "start single"): 917,
    ("pgqueuer", "start batched"): 50_061,
    ("procrastinate", "start batched"): 17_517,
}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--n", type=int, default=5_000, help="chains per measurement")
    parser.add_argument("--batch", type=int, default=100, help="chains per batched call")
    parser.add_argument("--concurrency", type=int, default=10, help="worker concurrency")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of every figure (median kept); rounds interleave the systems, so "
        "that a machine whose speed drifts moves ours and the peers' figures alike",
    )
    parser.add_argument(
        "--systems", type=csv, default=list(SYSTEMS), help=f"subset of {','.join(SYSTEMS)}"
    )
    parser.add_argument(
        "--metrics", type=csv, default=list(METRICS), help="subset of the measured figures"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds per processing run")
    parser.add_argument("--pgq-batch-size", type=int, default=5, help="PgQueuer dequeue batch size")
    parser.add_argument(
        "--pgq-max-tasks",
        type=int,
        default=10,
        help="PgQueuer max_concurrent_tasks, its concurrency cap (0: unlimited; it must be "
        "at least twice the batch size)",
    )
    parser.add_argument(
        "--pgbench-seconds", type=int, default=10, help="duration of each pgbench run (-T)"
    )
    parser.add_argument(
        "--render", default=None, help="print the table and targets of a results JSON; run nothing"
    )
    return parser.parse_args(argv)


async def _queuert_figures(
    adapter: str, args: argparse.Namespace, workdir: Path, pg_url: str | None
) -> list[Result]:
    n, batch = args.n, args.batch
    runs: dict[str, Callable[[queuert_runs.Store], Awaitable[Result]]] = {
        "start single": lambda s: queuert_runs.start_single(s, n, app_tx=False),
        "start single (app tx)": lambda s: queuert_runs.start_single(s, n, app_tx=True),
        "start single (adapter tx)": lambda s: queuert_runs.start_single(
            s, n, app_tx=True, adapter_tx=True
        ),
        "start batched": lambda s: queuert_runs.start_batched(s, n, batch, app_tx=False),
        "start batched (app tx)": lambda s: queuert_runs.start_batched(s, n, batch, app_tx=True),
    }
    for scenario in queuert_runs.scenario_names():

        def process(s: queuert_runs.Store, sc: str = scenario) -> Awaitable[Result]:
            return queuert_runs.process(
                s, n, sc, concurrency=args.concurrency, timeout=args.timeout
            )

        runs[queuert_runs.PROCESS_METRICS[scenario]] = process
    results = []
    counter = 0
    for metric, body in runs.items():
        if metric not in args.metrics:
            continue

        async def once(body: Callable[[queuert_runs.Store], Awaitable[Result]] = body) -> Result:
            nonlocal counter
            counter += 1
            store = await queuert_runs.open_store(
                adapter, tag=f"m{counter}", workdir=workdir, pg_url=pg_url
            )
            try:
                return await body(store)
            finally:
                await store.close()

        results.append(await measure(args.repeat, adapter, metric, UNITS[metric], once))
    return results


async def _pgqueuer_figures(args: argparse.Namespace, url: str) -> list[Result]:
    n, batch = args.n, args.batch
    runs: dict[str, Callable[[], Awaitable[Result]]] = {
        "start single": lambda: pgqueuer_runs.start_single(url, n, app_tx=False),
        "start single (app tx)": lambda: pgqueuer_runs.start_single(url, n, app_tx=True),
        "start batched": lambda: pgqueuer_runs.start_batched(url, n, batch),
        "process one-job chains": lambda: pgqueuer_runs.process(
            url,
            n,
            batch_size=args.pgq_batch_size,
            max_concurrent_tasks=args.pgq_max_tasks,
            timeout=args.timeout,
        ),
        PGQ_DEFAULTS: lambda: pgqueuer_runs.process(
            url, n, batch_size=10, max_concurrent_tasks=0, timeout=args.timeout
        ),
    }
    results = []
    for metric, body in runs.items():
        if metric not in args.metrics:
            continue

        async def once(body: Callable[[], Awaitable[Result]] = body) -> Result:
            await pgqueuer_runs.clear(url)
            return await body()

        results.append(await measure(args.repeat, "pgqueuer", metric, UNITS[metric], once))
    return results


async def _procrastinate_figures(args: argparse.Namespace, url: str) -> list[Result]:
    n, batch = args.n, args.batch
    runs: dict[str, Callable[[], Awaitable[Result]]] = {
        "start single": lambda: procrastinate_runs.start_single(url, n),
        "start batched": lambda: procrastinate_runs.start_batched(url, n, batch),
        "process one-job chains": lambda: procrastinate_runs.process(
            url, n, concurrency=args.concurrency, timeout=args.timeout
        ),
    }
    results = []
    for metric, body in runs.items():
        if metric not in args.metrics:
            continue

        async def once(body: Callable[[], Awaitable[Result]] = body) -> Result:
            await procrastinate_runs.clear(url)
            return await body()

        results.append(await measure(args.repeat, "procrastinate", metric, UNITS[metric], once))
    return results


async def _graphile_figures(args: argparse.Namespace, url: str) -> list[Result]:
    n, batch = args.n, args.batch

    def processing(performance: bool) -> Callable[[], Awaitable[Result]]:
        return lambda: graphile_runs.process(
            url, n, concurrency=args.concurrency, performance=performance, timeout=args.timeout
        )

    runs: dict[str, Callable[[], Awaitable[Result]]] = {
        "start single": lambda: graphile_runs.start_single(url, n),
        "start batched": lambda: graphile_runs.start_batched(url, n, batch),
        "process one-job chains": processing(False),
        GW_FAST: processing(True),
    }
    results = []
    for metric, body in runs.items():
        if metric not in args.metrics:
            continue

        async def once(body: Callable[[], Awaitable[Result]] = body) -> Result:
            await graphile_runs.clear(url)
            return await body()

        results.append(await measure(args.repeat, "graphile", metric, UNITS[metric], once))
    return results


async def _ceiling_figures(args: argparse.Namespace) -> list[Result]:
    """``pgbench -N -c 10 -j 2`` (the ceiling of the phase path) and with 1 client
    (the ceiling of one start per transaction)."""
    results = []
    for metric, clients, threads in ((CEILING, 10, 2), (CEILING_ONE, 1, 1)):
        if metric not in args.metrics:
            continue

        async def once(clients: int = clients, threads: int = threads) -> Result:
            return await pgbench_runs.commit_ceiling(clients, threads, args.pgbench_seconds)

        results.append(await measure(args.repeat, "pgbench", metric, UNITS[metric], once))
    return results


def _value(results: list[Result], system: str, metric: str) -> float:
    for r in results:
        if r.system == system and r.metric == metric:
            return r.value
    return float("nan")


def _ratio(results: list[Result], a: tuple[str, str], b: tuple[str, str]) -> float:
    """``a / b``: the median of the per-round ratios when both were measured in the
    same rounds (so a drift of the machine's speed cancels out), else of the medians."""
    rounds: list[list[float]] = []
    for system, metric in (a, b):
        found = [r for r in results if r.system == system and r.metric == metric]
        rounds.append(list(found[0].details.get("rounds", [])) if found else [])
    if rounds[0] and len(rounds[0]) == len(rounds[1]):
        return float(statistics.median(x / y for x, y in zip(rounds[0], rounds[1], strict=True)))
    return _value(results, *a) / _value(results, *b)


def targets(results: list[Result]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it is met."""

    def v(system: str, metric: str) -> float:
        return _value(results, system, metric)

    def ratio(a: tuple[str, str], b: tuple[str, str]) -> float:
        return _ratio(results, a, b)

    pg_process = v("postgres", "process one-job chains")
    pg_one = ("postgres", "process one-job chains")
    checks: list[tuple[str, float, float]] = [
        ("PostgreSQL process one-job chains >= 5,000 jobs/s", pg_process, 5_000),
        (
            "PostgreSQL process >= 1.0x PgQueuer at concurrency 10 (same run)",
            ratio(pg_one, ("pgqueuer", "process one-job chains")),
            1.0,
        ),
        (
            "PostgreSQL process >= 1.0x PgQueuer with its run() defaults (same run)",
            ratio(pg_one, ("pgqueuer", PGQ_DEFAULTS)),
            1.0,
        ),
        ("PostgreSQL start single >= 1,500 chains/s", v("postgres", "start single"), 1_500),
        ("PostgreSQL start batched >= 30,000 chains/s", v("postgres", "start batched"), 30_000),
        (
            "PostgreSQL full phase path >= 50% of process",
            ratio(("postgres", "full phase path"), pg_one),
            0.5,
        ),
        (
            "PostgreSQL process >= 1.0x Graphile Worker with its performance settings",
            ratio(pg_one, ("graphile", GW_FAST)),
            1.0,
        ),
        (
            "PostgreSQL full phase path >= 50% of pgbench -N -c 10 -j 2 (same run)",
            ratio(("postgres", "full phase path"), ("pgbench", CEILING)),
            0.5,
        ),
        (
            "PostgreSQL start single (app tx) >= 1.0x PgQueuer (same run)",
            ratio(("postgres", "start single (app tx)"), ("pgqueuer", "start single (app tx)")),
            1.0,
        ),
        (
            "PostgreSQL start batched >= 1.0x Graphile Worker addJobs (same run)",
            ratio(("postgres", "start batched"), ("graphile", "start batched")),
            1.0,
        ),
        (
            "PostgreSQL start batched >= 1.0x PgQueuer (same run)",
            ratio(("postgres", "start batched"), ("pgqueuer", "start batched")),
            1.0,
        ),
        ("SQLite process >= 5,000 jobs/s", v("sqlite", "process one-job chains"), 5_000),
        ("SQLite start batched >= 30,000 chains/s", v("sqlite", "start batched"), 30_000),
        (
            "SQLite full phase path >= 50% of process",
            ratio(("sqlite", "full phase path"), ("sqlite", "process one-job chains")),
            0.5,
        ),
        ("in-memory process >= 20,000 jobs/s", v("memory", "process one-job chains"), 20_000),
    ]
    for system, label in (("postgres", "PostgreSQL"), ("sqlite", "SQLite")):
        # The limited figures compare with the default worker's unlimited one at the
        # same concurrency; the figure without a local queue is printed beside them
        # for the cost of limits alone (per-key limited queues are not prefetched,
        # queue-wide ones only within their limit).
        for metric in (
            "process one-job chains (limit 10)",
            "process one-job chains (100 keys limit 1)",
        ):
            short = metric.removeprefix("process one-job chains ")
            for base, name in (
                ("process one-job chains", "unlimited"),
                (queuert_runs.UNQUEUED, "unlimited without a local queue"),
            ):
                checks.append(
                    (
                        f"{label} {short} >= 70% of {name}",
                        ratio((system, metric), (system, base)),
                        0.7,
                    )
                )
    return [
        {
            "target": name,
            "measured": None if math.isnan(value) else round(value, 3),
            "threshold": threshold,
            "met": None if math.isnan(value) else value >= threshold,
        }
        for name, value, threshold in checks
    ]


async def main(args: argparse.Namespace) -> None:
    measured_source = source()  # what the figures measure, before anything can change
    results: list[Result] = []
    notes: list[str] = []
    server: dict[str, Any] = {}
    print(f"N = {args.n:,} chains per figure, batch {args.batch}, concurrency {args.concurrency}")
    one_round = argparse.Namespace(**{**vars(args), "repeat": 1})
    rounds: dict[tuple[str, str], list[Result]] = {}

    def keep(found: list[Result]) -> None:
        for result in found:
            rounds.setdefault((result.system, result.metric), []).append(result)

    with tempfile.TemporaryDirectory(prefix="queuert-bench-") as tmp:
        workdir = Path(tmp)
        pg_systems = [s for s in SYSTEMS[2:] if s in args.systems]
        problem = await pg.reachable(pg.server_url()) if pg_systems else None
        if problem:
            notes.append(f"skipped {', '.join(pg_systems)}: {problem}")
            print(notes[-1])
            pg_systems = []
        else:
            server = await pg.server_settings(pg.server_url()) if pg_systems else {}
        database = pg.fresh_database() if pg_systems else nullcontext(None)
        async with database as url:
            peers: list[str] = [
                s for s in ("pgqueuer", "procrastinate") if url is not None and s in pg_systems
            ]
            if url is not None and "pgqueuer" in peers:
                await pgqueuer_runs.install(url)
            if url is not None and "procrastinate" in peers:
                await procrastinate_runs.install(url)
            if url is not None and "graphile" in pg_systems:
                problem = await graphile_runs.install()
                if problem is None:
                    await graphile_runs.migrate(url)
                    server["graphile_node"] = await graphile_runs.node_version()
                    peers.append("graphile")
                else:
                    notes.append(problem)
                    print(problem)
            ceiling = "pgbench" in pg_systems and url is not None
            if ceiling and (problem := pgbench_runs.available()) is not None:
                notes.append(problem)
                print(problem)
                ceiling = False
            for number in range(1, args.repeat + 1):
                if args.repeat > 1:
                    print(f"round {number} of {args.repeat}", flush=True)
                for adapter in ("memory", "sqlite"):
                    if adapter in args.systems:
                        keep(await _queuert_figures(adapter, one_round, workdir, None))
                if url is None:
                    continue
                if "postgres" in pg_systems:
                    keep(await _queuert_figures("postgres", one_round, workdir, url))
                if "pgqueuer" in peers:
                    keep(await _pgqueuer_figures(one_round, url))
                if "procrastinate" in peers:
                    keep(await _procrastinate_figures(one_round, url))
                if "graphile" in peers:
                    keep(await _graphile_figures(one_round, url))
                if ceiling:
                    keep(await _ceiling_figures(one_round))
    results = [median_run(runs) for runs in rounds.values()]

    checks = report(results, args)
    path = write_json(
        {
            "benchmark": "capacity",
            "settings": {
                "n": args.n,
                "batch": args.batch,
                "concurrency": args.concurrency,
                "repeat": args.repeat,
                "uvloop": args.uvloop,
                "pgbench_seconds": args.pgbench_seconds,
                "pgqueuer_batch_size": args.pgq_batch_size,
                "pgqueuer_max_concurrent_tasks": args.pgq_max_tasks or None,
            },
            "postgres_server": server,
            "notes": notes,
            "source": measured_source,
            "results": [r.to_json() for r in results],
            "targets": checks,
            "peer_ratios": peer_ratios(results),
        },
        timestamp(),
        Path(args.out_dir) if args.out_dir else None,
    )
    print(f"wrote {path}")


def report(results: list[Result], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Print the table and the targets; returns the targets."""
    systems = [s for s in SYSTEMS if s in args.systems]
    cells = {(r.metric, r.system): format_value(r.value, "") for r in results}
    for (system, metric), ref in REFERENCE.items():
        if (metric, system) in cells:
            cells[(metric, system)] += f" (ref {ref:,})"
    print_table(
        f"Processing capacity, N = {args.n:,} (chains/s for start, jobs/s for process)",
        [m for m in METRICS if m in args.metrics],
        systems,
        cells,
    )
    checks = targets(results)
    for check in checks:
        mark = {True: "met", False: "MISSED", None: "not measured"}[check["met"]]
        print(f"  [{mark:>12}] {check['target']}: {check['measured']}")
    ratios = peer_ratios(results)
    if ratios:
        listed = ", ".join(f"{name} {value:.2f}x" for name, value in ratios.items())
        print(f"  queuert on PostgreSQL / peer, same rounds: {listed}")
    return checks


_COMPARED = {"start single": "start single", "start batched": "start batched"}
_COMPARED["process"] = "process one-job chains"
_PEERS = (("pgqueuer", "PgQueuer"), ("procrastinate", "procrastinate"), ("graphile", "Graphile"))
PEER_COMPARISONS = {
    f"{label} / {name}": (metric, peer, metric)
    for peer, name in _PEERS
    for label, metric in _COMPARED.items()
}
"""Name -> (queuert's metric, peer, the peer's metric)."""
PEER_COMPARISONS["process / PgQueuer (its defaults)"] = (
    "process one-job chains",
    "pgqueuer",
    PGQ_DEFAULTS,
)
PEER_COMPARISONS["process / Graphile (performance settings)"] = (
    "process one-job chains",
    "graphile",
    GW_FAST,
)
PEER_COMPARISONS["start single (app tx) / PgQueuer"] = (
    "start single (app tx)",
    "pgqueuer",
    "start single (app tx)",
)
PEER_COMPARISONS["full phase path / pgbench -N -c 10"] = ("full phase path", "pgbench", CEILING)


def peer_ratios(results: list[Result]) -> dict[str, float]:
    """queuert on PostgreSQL over each peer doing the same work, where both were measured."""
    found = {}
    for name, (ours, peer, theirs) in PEER_COMPARISONS.items():
        value = _ratio(results, ("postgres", ours), (peer, theirs))
        if not math.isnan(value):
            found[name] = round(value, 3)
    return found


def render(path: str, args: argparse.Namespace) -> None:
    data = json.loads(Path(path).read_text())
    results = [
        Result(
            system=r["system"],
            metric=r["metric"],
            value=float("nan") if r["value"] is None else r["value"],
            unit=r["unit"],
            count=r["count"],
            seconds=float("nan") if r["seconds"] is None else r["seconds"],
            details=r["details"],
        )
        for r in data["results"]
    ]
    args.n = data["settings"]["n"]
    report(results, args)


if __name__ == "__main__":
    arguments = parse()
    if arguments.render:
        render(arguments.render, arguments)
    else:
        run(lambda: main(arguments), arguments)
