"""Command-line plumbing shared by the benchmark entry points."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import psutil

from benchmarks.results import Result, failed

T = TypeVar("T")


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--uvloop", action="store_true", help="run on uvloop instead of asyncio's own loop"
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    parser.add_argument(
        "--out-dir", default=None, help="where to write the JSON (default benchmarks/results)"
    )
    parser.add_argument(
        "--quiet-cpu",
        type=float,
        default=30.0,
        help="before each figure, wait until the machine's CPU use over one second is below "
        "this percentage (other processes disturb the figures); 0 disables the wait",
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=300.0, help="longest wait for a quiet machine (s)"
    )
    return parser


QUIET = {"cpu": 30.0, "wait": 300.0}


async def wait_quiet() -> float:
    """Wait (up to ``--quiet-wait`` seconds) until the machine's CPU use over one second
    is below ``--quiet-cpu`` percent; returns the last reading."""
    deadline = time.monotonic() + QUIET["wait"]
    busy = psutil.cpu_percent(interval=None)
    while QUIET["cpu"] > 0:
        await asyncio.sleep(1.0)
        busy = psutil.cpu_percent(interval=None)
        if busy < QUIET["cpu"] or time.monotonic() > deadline:
            break
    return busy


def run(main: Callable[[], Coroutine[Any, Any, T]], args: argparse.Namespace) -> T:
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s %(message)s")
    QUIET["cpu"], QUIET["wait"] = args.quiet_cpu, args.quiet_wait
    # SIGTERM unwinds like Ctrl-C, so the run still drops its database.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if args.uvloop:
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())


def csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


async def measure(
    repeat: int, system: str, metric: str, unit: str, once: Callable[[], Awaitable[Result]]
) -> Result:
    """Run ``once`` ``repeat`` times and keep the run with the median value; every
    value goes into the details. A failure is recorded, not raised."""
    runs: list[Result] = []
    for _ in range(repeat):
        cpu_before = await wait_quiet()
        load_before = os.getloadavg()[0]
        psutil.cpu_percent(interval=None)
        try:
            result = await once()
            result.metric = metric
        except Exception as exc:
            logging.getLogger("benchmarks").exception("%s / %s failed", system, metric)
            return failed(system, metric, unit, exc)
        result.details["machine_cpu_percent"] = {
            "before": cpu_before,
            "during": psutil.cpu_percent(interval=None),
        }
        result.details["loadavg_1m_before"] = round(load_before, 2)
        runs.append(result)
    chosen = median_run(runs)
    print(f"  {system:<14} {metric:<28} {chosen.value:>12,.0f} {unit}", flush=True)
    return chosen


def median_run(runs: list[Result]) -> Result:
    """The run with the median value (the lower one of an even count), with every
    value in its details: ``rounds`` in the order measured, ``runs`` sorted."""
    chosen = sorted(runs, key=lambda r: r.value)[(len(runs) - 1) // 2]
    if len(runs) > 1:
        chosen.details["rounds"] = [round(r.value, 1) for r in runs]
        chosen.details["runs"] = sorted(chosen.details["rounds"])
        chosen.details["median_of"] = len(runs)
        chosen.details["stdev"] = round(statistics.pstdev(r.value for r in runs), 1)
    return chosen
