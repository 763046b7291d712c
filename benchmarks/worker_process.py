"""A worker process driven by a benchmark over its standard streams.

    python -m benchmarks.worker_process --state-url URL --notify-url URL --scenario one

It builds the application, prints ``{"ready": true}``, starts its worker when it
reads ``go`` on standard input, prints a progress line every ``--report-ms`` (the
count of committed job ends, the ``time.monotonic()`` of the first handler start
and of the last end, RSS in MB) and stops when it reads ``stop`` or standard
input closes, printing a last line with ``"final": true`` and any latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from typing import Any

import psutil

from benchmarks.chains import ALL_CHAINS, register
from benchmarks.probe import Probe, attach_probe
from queuert import Queuert
from queuert.urls import notify_from_url, state_from_url

_MB = 1024 * 1024


def _emit(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


async def _lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def main(args: argparse.Namespace) -> None:
    state = await state_from_url(args.state_url)
    notify = await notify_from_url(args.notify_url)
    app: Queuert[Any] = Queuert(state=state, notify=notify, chains=ALL_CHAINS)
    probe = Probe(target=2**62, clock=time.monotonic)
    attach_probe(app, probe)
    latencies: list[float] = []
    worker = app.worker(concurrency=args.concurrency, poll_interval=args.poll_interval)
    register(worker, args.scenario, probe, on_latency=latencies.append)
    process = psutil.Process()
    thresholds = sorted(args.rss_at)
    rss_at: dict[int, float] = {}
    stdin = await _lines()
    _emit({"ready": True})
    command = (await stdin.readline()).decode().strip()
    if command != "go":
        await app.close()
        return
    await worker.start()

    def progress(final: bool = False) -> dict[str, Any]:
        return {
            "count": probe.count,
            "first": probe.first_start,
            "last": probe.last_end,
            "rss_mb": process.memory_info().rss / _MB,
            "final": final,
        }

    async def report() -> None:
        last_count = -1
        while True:
            await asyncio.sleep(args.report_ms / 1000)
            while thresholds and probe.count >= thresholds[0]:
                rss_at[thresholds.pop(0)] = process.memory_info().rss / _MB
            if probe.count != last_count:
                last_count = probe.count
                _emit(progress())

    reporter = asyncio.create_task(report())
    try:
        while True:
            line = (await stdin.readline()).decode().strip()
            if line in ("stop", ""):
                break
    finally:
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)
        await worker.stop()
        final = progress(final=True)
        final["rss_at"] = {str(k): v for k, v in rss_at.items()}
        final["latencies"] = latencies
        final["metrics"] = app.metrics.snapshot()
        _emit(final)
        await app.close()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-url", required=True)
    parser.add_argument("--notify-url", default="none")
    parser.add_argument("--scenario", default="one")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--report-ms", type=float, default=50)
    parser.add_argument(
        "--rss-at", type=int, action="append", default=[], help="record RSS at this job count"
    )
    parser.add_argument("--uvloop", action="store_true")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    logging.basicConfig(level=logging.WARNING)
    if arguments.uvloop:
        import uvloop

        uvloop.run(main(arguments))
    else:
        asyncio.run(main(arguments))
