"""Profile of a process phase (one worker at concurrency 10, no-op one-job chains)
with pyinstrument, plus the round trips it makes per job.

    hatch run bench:profile                       # PostgreSQL, N = 5,000
    hatch run bench:profile --adapter sqlite --scenario phases

Writes ``profile-<adapter>-<scenario>-<timestamp>.html`` and ``.txt`` next to the
JSON results. The whole event-loop thread is sampled, so every task shows.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
from asyncpg.connection import LoggedQuery
from pyinstrument import Profiler

from benchmarks import pg, queuert_runs
from benchmarks.chains import SCENARIOS
from benchmarks.cli import base_parser, run, wait_quiet
from benchmarks.results import RESULTS_DIR, timestamp, write_json

START_PHASES = ("start-single", "start-single-app-tx", "start-batched", "start-batched-app-tx")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--adapter", default="postgres", choices=queuert_runs.ADAPTERS)
    parser.add_argument(
        "--scenario",
        default="one",
        choices=[*queuert_runs.scenario_names(), *START_PHASES],
        help="a process scenario, or a start phase",
    )
    parser.add_argument("--batch", type=int, default=100, help="chains per batched start")
    parser.add_argument("--n", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.0005, help="sampling interval (s)")
    parser.add_argument("--timeout", type=float, default=600)
    return parser.parse_args(argv)


class RoundTrips:
    """Counts what the adapter's pool connections send, through asyncpg's public query
    loggers (``Connection.add_query_logger``, installed by the pool's ``init`` hook):
    statements with arguments (fetch, fetchrow, execute with arguments) and simple
    queries (BEGIN, COMMIT, the pool's reset query, ...). Each is one round trip."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.active = False

    def _logged(self, record: LoggedQuery) -> None:
        if not self.active:
            return
        if record.args:
            self.counts["statement with arguments"] += 1
        else:
            query = record.query.strip()
            self.counts[query.split(None, 1)[0].rstrip(";").upper() if query else "?"] += 1

    async def init(self, conn: asyncpg.Connection[asyncpg.Record]) -> None:
        """The pool's ``init`` hook: every new connection reports its queries."""
        conn.add_query_logger(self._logged)

    @contextmanager
    def counting(self) -> Iterator[None]:
        self.active = True
        try:
            yield
        finally:
            self.active = False


async def main(args: argparse.Namespace) -> None:
    pg_url: str | None = None
    server_problem = None
    if args.adapter == "postgres":
        server_problem = await pg.reachable(pg.server_url())
        if server_problem:
            print(server_problem)
            return
    profiler = Profiler(interval=args.interval, async_mode="disabled")
    round_trips = RoundTrips()
    statements = round_trips.counts
    pool_options = {"init": round_trips.init}

    @asynccontextmanager
    async def profiled() -> AsyncIterator[None]:
        with round_trips.counting():
            profiler.start()
            try:
                yield
            finally:
                profiler.stop()

    stem = f"profile-{args.adapter}-{args.scenario}-{timestamp()}"
    out_dir = Path(args.out_dir) if args.out_dir else RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="queuert-profile-") as tmp:
        workdir = Path(tmp)

        async def body(url: str | None) -> dict[str, Any]:
            setup = await queuert_runs.open_store(
                args.adapter, tag="profile", workdir=workdir, pg_url=url
            )
            if args.scenario not in START_PHASES:
                await queuert_runs.enqueue_setup(setup.app, SCENARIOS[args.scenario], args.n)
            store = setup
            xacts_before = None
            if args.adapter != "memory":  # a memory store does not outlive its adapter
                await setup.close()  # its backends exit and publish their statistics
                if url is not None:
                    await asyncio.sleep(0.5)
                    xacts_before = await pg.committed_transactions(url)
                store = await queuert_runs.open_store(
                    args.adapter,
                    tag="profile",
                    workdir=workdir,
                    pg_url=url,
                    pool_options=pool_options if url is not None else None,
                )
            await wait_quiet()
            try:
                if args.scenario in START_PHASES:
                    app_tx = args.scenario.endswith("app-tx")
                    async with profiled():
                        if args.scenario.startswith("start-single"):
                            result = await queuert_runs.start_single(store, args.n, app_tx=app_tx)
                        else:
                            result = await queuert_runs.start_batched(
                                store, args.n, args.batch, app_tx=app_tx
                            )
                else:
                    result = await queuert_runs.process(
                        store,
                        args.n,
                        args.scenario,
                        concurrency=args.concurrency,
                        timeout=args.timeout,
                        setup=False,
                        around=profiled,
                    )
            finally:
                await store.close()
            await asyncio.sleep(0.1)  # query loggers run in callbacks of their own
            jobs = result.count
            extra: dict[str, Any] = {"result": result.to_json()}
            if url is not None and xacts_before is not None:
                await asyncio.sleep(1.5)
                xacts = await pg.committed_transactions(url) - xacts_before
                extra["server_transactions_per_job"] = round(xacts / jobs, 3)
                extra["client_round_trips_per_job"] = round(sum(statements.values()) / jobs, 3)
                extra["client_round_trips_by_kind_per_job"] = {
                    k: round(v / jobs, 3) for k, v in statements.most_common()
                }
            return extra

        if args.adapter == "postgres":
            async with pg.fresh_database("queuert_profile") as url:
                pg_url = url
                extra = await body(pg_url)
        else:
            extra = await body(None)

    html = out_dir / f"{stem}.html"
    text = out_dir / f"{stem}.txt"
    html.write_text(profiler.output_html())
    text.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    print(profiler.output_text(unicode=True, color=False, show_all=False)[:12_000])
    result = extra["result"]
    print(
        f"{args.adapter} {args.scenario}: {result['value']:,.0f} {result['unit']} "
        "under the profiler (figures per job below are per chain for a start phase)"
    )
    for key in (
        "server_transactions_per_job",
        "client_round_trips_per_job",
        "client_round_trips_by_kind_per_job",
    ):
        if key in extra:
            print(f"  {key}: {extra[key]}")
    if "state_calls_per_job" in result["details"]:
        print(f"  state calls per job: {result['details']['state_calls_per_job']}")
    path = write_json(
        {"benchmark": "profile", **extra, "html": str(html), "text": str(text)}, stem, out_dir
    )
    print(f"wrote {html}, {text} and {path}")


if __name__ == "__main__":
    arguments = parse()
    run(lambda: main(arguments), arguments)
