"""queuert's side of the benchmarks: a fresh store per measurement and the phases.

Every store is the one a user would configure: the in-memory adapter with the
in-process notifier, a SQLite file (WAL) with the in-process notifier, or a
PostgreSQL schema with the LISTEN/NOTIFY notifier.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import psutil

import queuert
from benchmarks.chains import ALL_CHAINS, JOBS_PER_CHAIN, SCENARIOS, Item, register
from benchmarks.probe import Probe, attach_probe
from benchmarks.results import Result, rate
from queuert import ChainDef, NotifyAdapter, Queuert, StateAdapter
from queuert_postgres import PostgresNotifyAdapter, PostgresStateAdapter
from queuert_sqlite import SqliteStateAdapter

TxOpener = Callable[[], AbstractAsyncContextManager[Any]]
"""Opens one application transaction, yielding what ``enqueue_job_chain`` takes."""

ADAPTERS = ("memory", "sqlite", "postgres")
SETUP_BATCH = 1_000


@dataclass
class Store:
    """An application on a fresh store; ``state_url``/``notify_url`` let another
    process open the same store (``None`` for the in-memory one)."""

    adapter: str
    app: Queuert[Any]
    state_url: str | None
    notify_url: str | None
    pg_url: str | None = None
    """The server's URL (PostgreSQL only): an application connection opens there."""

    async def close(self) -> None:
        await self.app.close()


async def open_store(
    adapter: str,
    *,
    tag: str,
    workdir: Path,
    pg_url: str | None,
    notify: str = "default",
    pool_options: dict[str, Any] | None = None,
) -> Store:
    """A migrated, empty store named ``tag`` (a file or schema of its own).

    ``notify``: "default" (the notifier a user would pair with the adapter),
    "none" (workers poll), or a notify URL. ``pool_options`` go to the PostgreSQL
    adapter's pool (:func:`asyncpg.create_pool`).
    """
    state: StateAdapter[Any]
    notifier: NotifyAdapter | None
    state_url: str | None = None
    notify_url: str | None = None
    if adapter == "memory":
        state = queuert.MemoryStateAdapter()
        notifier = queuert.InProcessNotifyAdapter()
    elif adapter == "sqlite":
        path = workdir / f"{tag}.db"
        state = SqliteStateAdapter(path)
        state_url = f"sqlite:///{path}"
        notifier = queuert.InProcessNotifyAdapter()
    elif adapter == "postgres":
        if pg_url is None:
            raise ValueError("the postgres store needs a PostgreSQL URL")
        schema = f"bench_{tag}"
        state = await PostgresStateAdapter.connect(pg_url, schema=schema, **(pool_options or {}))
        state_url = f"{pg_url}?{urlencode({'schema': schema})}"
        notifier = PostgresNotifyAdapter(pg_url)
        notify_url = pg_url
    else:
        raise ValueError(f"unknown adapter {adapter!r}")
    if notify == "none":
        notifier, notify_url = None, "none"
    elif notify != "default":
        from queuert.urls import notify_from_url

        notifier = await notify_from_url(notify)
        notify_url = notify
    await state.migrate()
    app: Queuert[Any] = Queuert(state=state, notify=notifier, chains=ALL_CHAINS)
    return Store(adapter, app, state_url, notify_url, pg_url if adapter == "postgres" else None)


async def enqueue_setup(app: Queuert[Any], chain: ChainDef[Item, Any], n: int) -> None:
    """Start ``n`` chains in large batches (setup, not measured)."""
    for start in range(0, n, SETUP_BATCH):
        inputs = [Item(i) for i in range(start, min(n, start + SETUP_BATCH))]
        await app.enqueue_job_chains(None, chain, inputs)


@asynccontextmanager
async def app_transactions(store: Store, *, adapter_tx: bool) -> AsyncIterator[TxOpener]:
    """What opens the application's transactions for a start phase.

    On PostgreSQL, the application's own asyncpg connection (opened once for the
    phase, as PgQueuer's figure does) inside ``conn.transaction()``: the usual
    shape of an application that starts chains with its own writes. With
    ``adapter_tx`` (and on the other adapters), the adapter's ``transaction()``,
    which lends a connection of its pool for each transaction and resets it when it
    comes back."""
    app = store.app
    if store.pg_url is None or adapter_tx:
        yield app.state.transaction
        return
    conn = await asyncpg.connect(store.pg_url, timeout=30)
    try:

        @asynccontextmanager
        async def on_conn() -> AsyncIterator[Any]:
            async with conn.transaction():
                yield conn

        yield on_conn
    finally:
        await conn.close(timeout=30)


async def start_single(store: Store, n: int, *, app_tx: bool, adapter_tx: bool = False) -> Result:
    """``n`` chains, one ``enqueue_job_chain`` per committed transaction: the
    adapter's own (``tx=None``) or, with ``app_tx``, one the application opens
    (:func:`app_transactions`)."""
    app = store.app
    chain = SCENARIOS["one"]
    if app_tx:
        async with app_transactions(store, adapter_tx=adapter_tx) as transaction:
            began = time.perf_counter()
            for i in range(n):
                async with app.with_notify(), transaction() as tx:
                    await app.enqueue_job_chain(tx, chain, Item(i))
            seconds = time.perf_counter() - began
    else:
        began = time.perf_counter()
        for i in range(n):
            await app.enqueue_job_chain(None, chain, Item(i))
        seconds = time.perf_counter() - began
    if adapter_tx:
        metric = "start single (adapter tx)"
    else:
        metric = "start single (app tx)" if app_tx else "start single"
    return rate(store.adapter, metric, n, seconds, "chains/s")


async def start_batched(store: Store, n: int, batch: int, *, app_tx: bool) -> Result:
    """``n`` chains, ``batch`` per ``enqueue_job_chains`` call and transaction."""
    app = store.app
    chain = SCENARIOS["one"]
    batches = [[Item(i) for i in range(s, min(n, s + batch))] for s in range(0, n, batch)]
    if app_tx:
        async with app_transactions(store, adapter_tx=False) as transaction:
            began = time.perf_counter()
            for inputs in batches:
                async with app.with_notify(), transaction() as tx:
                    await app.enqueue_job_chains(tx, chain, inputs)
            seconds = time.perf_counter() - began
    else:
        began = time.perf_counter()
        for inputs in batches:
            await app.enqueue_job_chains(None, chain, inputs)
        seconds = time.perf_counter() - began
    metric = "start batched (app tx)" if app_tx else "start batched"
    return rate(store.adapter, metric, n, seconds, "chains/s", batch=batch)


UNQUEUED = "process one-job chains (no local queue)"
"""One-job chains run by a worker without its local queue (``prefetch=0``): it
acquires only for its free slots, as it must for limited and rate-limited queues,
so the limited figures compare with this one for the cost of their limits."""

PROCESS_METRICS = {
    "one": "process one-job chains",
    "one-unqueued": UNQUEUED,
    "phases": "full phase path",
    "three": "process three-step chains",
    "limited": "process one-job chains (limit 10)",
    "keyed": "process one-job chains (100 keys limit 1)",
    "rated": "process one-job chains (rate 1000000/s)",
}


async def process(
    store: Store,
    n: int,
    scenario: str,
    *,
    concurrency: int,
    timeout: float,
    setup: bool = True,
    around: Callable[[], AbstractAsyncContextManager[object]] | None = None,
) -> Result:
    """Start ``n`` chains (setup, skipped when ``setup`` is false because they were
    started already), then run one worker at ``concurrency`` until every job's end is
    committed. The rate counts jobs from the first handler start to the last
    committed end. ``around`` wraps the worker's run (a profiler, say)."""
    app = store.app
    chain = SCENARIOS[scenario]
    already = await count_completed_chains(app, chain)
    if setup:
        await enqueue_setup(app, chain, n)
    jobs = n * JOBS_PER_CHAIN[scenario]
    probe = Probe(jobs)
    metrics = attach_probe(app, probe)
    worker = app.worker(concurrency=concurrency, prefetch=0 if scenario == "one-unqueued" else None)
    register(worker, scenario, probe)
    async with around() if around is not None else nullcontext():
        cpu_before = cpu_seconds()
        began = time.perf_counter()
        await worker.start()
        try:
            await probe.wait(timeout)
            counters = metrics.snapshot()
            cpu_after = cpu_seconds()
        finally:
            await worker.stop()
    completed = await count_completed_chains(app, chain) - already
    if completed != n:
        raise RuntimeError(f"{completed} of {n} chains were completed in the store")
    per_job = {
        name.removeprefix("state.").removesuffix(".calls"): round(value / jobs, 3)
        for name, value in sorted(counters.items())
        if name.startswith("state.") and name.endswith(".calls")
    }
    return rate(
        store.adapter,
        PROCESS_METRICS[scenario],
        jobs,
        probe.elapsed,
        "jobs/s",
        chains=n,
        chains_per_s=n / probe.elapsed,
        seconds_with_worker_start=(probe.last_end or began) - began,
        concurrency=concurrency,
        state_calls_per_job=per_job,
        acquire_attempts_per_job=round(counters.get("worker.acquire_attempts", 0) / jobs, 3),
        cpu_ms_per_1000_jobs={
            side: round((cpu_after[side] - cpu_before[side]) * 1e6 / jobs, 1) for side in cpu_after
        },
    )


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by this process and by the PostgreSQL server's processes
    (on this machine), to tell which side a process phase keeps busy."""
    own = psutil.Process().cpu_times()
    server = 0.0
    for proc in psutil.process_iter(["name", "cpu_times"]):
        if proc.info["name"] == "postgres" and proc.info["cpu_times"] is not None:
            server += proc.info["cpu_times"].user + proc.info["cpu_times"].system
    return {"client": own.user + own.system, "postgres": server}


async def count_completed_chains(app: Queuert[Any], chain: ChainDef[Any, Any]) -> int:
    total = 0
    after: str | None = None
    while True:
        page = await app.list_chains(status="completed", chain=chain, after=after, limit=10_000)
        total += len(page.items)
        if page.next_cursor is None:
            return total
        after = page.next_cursor


def scenario_names() -> Sequence[str]:
    return tuple(PROCESS_METRICS)
