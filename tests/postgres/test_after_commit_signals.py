"""The signals of a finalize (chain completed, or the next job scheduled) leave after
its transaction committed, in a statement of their own: a transaction that runs
NOTIFY takes a database-wide lock at commit and holds it through the flush, so
concurrent finalizes that notified inside their transactions would commit one at
a time. Subscribers still hear every finalize, and nothing of one that rolled back.
So do those of the adapter's own one-statement writes: chain starts without a
caller's transaction, and a worker's batched completions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest_asyncio
from asyncpg.connection import LoggedQuery

import queuert
from queuert import Continuation, EnqueueJob, Job, JobContext, ScheduledSignal
from queuert_postgres import PostgresNotifyAdapter, PostgresStateAdapter
from tests.postgres.conftest import drop_schema, unique_name
from tests.waiting import eventually

WAIT_S = 10.0


@dataclass
class Item:
    n: int


@dataclass
class Done:
    n: int


finalized = queuert.chain(
    "after-commit",
    input=Item,
    output=Done,
    retry=queuert.RetryPolicy(max_attempts=2, initial_delay_ms=0, max_delay_ms=0),
)
second = finalized.queue("after-commit-second", input=Item)


@dataclass
class Setup:
    app: queuert.Queuert[Any]
    scheduled: list[ScheduledSignal]
    completed: list[str]
    transactions: list[list[str]]
    """The statements of each transaction run on the adapter's pool, in order."""
    statements: list[str]
    """Every statement run on the adapter's pool, in order."""
    listener: PostgresNotifyAdapter
    schema: str


@pytest_asyncio.fixture
async def setup(postgres_url: str) -> AsyncIterator[Setup]:
    schema = unique_name()
    prefix = unique_name("ac")
    transactions: list[list[str]] = []
    statements: list[str] = []

    def logged(record: LoggedQuery) -> None:
        statements.append(record.query)
        # The pool has one connection: its statements arrive in order, and each
        # BEGIN opens the next transaction.
        if record.query.strip().upper().startswith("BEGIN"):
            transactions.append([])
        elif transactions:
            transactions[-1].append(record.query)

    async def init(conn: asyncpg.Connection[asyncpg.Record]) -> None:
        conn.add_query_logger(logged)

    state = await PostgresStateAdapter.connect(
        postgres_url, schema=schema, min_size=1, max_size=1, init=init
    )
    await state.migrate()
    app: queuert.Queuert[Any] = queuert.Queuert(
        state=state,
        notify=PostgresNotifyAdapter(postgres_url, channel_prefix=prefix),
        chains=[finalized],
    )
    listener = PostgresNotifyAdapter(postgres_url, channel_prefix=prefix)
    scheduled: list[ScheduledSignal] = []
    completed: list[str] = []

    async def on_scheduled(signal: ScheduledSignal) -> None:
        scheduled.append(signal)

    async def on_completed(chain_id: str) -> None:
        completed.append(chain_id)

    await listener.subscribe_job_scheduled(queues=[second.name], listener=on_scheduled)
    await listener.subscribe_chain_completed(chain_id=None, listener=on_completed)
    try:
        yield Setup(app, scheduled, completed, transactions, statements, listener, schema)
    finally:
        await listener.close()
        await app.close()
        await drop_schema(postgres_url, schema)


def notifying(transactions: list[list[str]]) -> list[list[str]]:
    return [t for t in transactions if any("pg_notify" in q for q in t)]


async def test_a_finalize_commits_without_notifying_and_signals_after(setup: Setup) -> None:
    app = setup.app
    worker = app.worker(concurrency=1, poll_interval=60.0)

    @worker.handler(finalized)
    async def first(job: Job[Item], ctx: JobContext[Any, Done]) -> Continuation:
        async def go_on(tx: Any, enqueue_job: EnqueueJob[Done]) -> Continuation:
            await tx.execute("SELECT 1")
            return await enqueue_job(second, Item(job.input.n + 1))

        return await ctx.finalize(go_on)

    @worker.handler(second)
    async def last(job: Job[Item], ctx: JobContext[Any, Done]) -> Done:
        async def finish(tx: Any, enqueue_job: EnqueueJob[Done]) -> Done:
            await tx.execute("SELECT 1")
            return Done(job.input.n)

        return await ctx.finalize(finish)

    async with worker:
        handle = await app.enqueue_job_chain(None, finalized, Item(1))
        # No polling within the timeout: the continuation's signal wakes the worker
        # for the next job, the completion's reaches the waiter.
        done = await app.wait_for_chain(handle, timeout=WAIT_S, poll_interval=60.0)
    assert done == Done(2)
    await eventually(lambda: setup.completed == [handle.id], timeout=WAIT_S)
    assert [(s.queue, s.count) for s in setup.scheduled] == [(second.name, 1)]
    finalizes = [t for t in setup.transactions if any(q == "SELECT 1" for q in t)]
    assert len(finalizes) == 2
    assert notifying(finalizes) == []


async def test_starts_and_batched_completions_commit_without_notifying_and_signal_after(
    setup: Setup,
) -> None:
    app = setup.app
    worker = app.worker(concurrency=4, poll_interval=60.0)

    @worker.handler(finalized)
    async def handle(job: Job[Item], ctx: JobContext[Any, Done]) -> Done:
        return Done(job.input.n)

    async with worker:
        setup.statements.clear()
        # No polling within the timeout: the starts' signals wake the worker, the
        # completions' reach the waiters.
        handles = [await app.enqueue_job_chain(None, finalized, Item(1))]
        handles += await app.enqueue_job_chains(None, finalized, [Item(2), Item(3)])
        for started in handles:
            await app.wait_for_chain(started, timeout=WAIT_S, poll_interval=60.0)
    await eventually(
        lambda: sorted(setup.completed) == sorted(h.id for h in handles), timeout=WAIT_S
    )
    assert any("INSERT" in q for q in setup.statements)
    # The reaper's statement (run as the worker starts) signals in itself what it
    # reaps; nothing else here may.
    notifying = [q for q in setup.statements if "pg_notify" in q and "expired AS" not in q]
    assert notifying == []


async def test_a_finalize_whose_commit_fails_after_its_write_signals_nothing(
    setup: Setup,
) -> None:
    app = setup.app
    table = f'"{setup.schema}".after_commit_keys'
    async with app.state.transaction() as tx:
        await tx.execute(f"CREATE TABLE {table} (k integer UNIQUE DEFERRABLE INITIALLY DEFERRED)")
    worker = app.worker(concurrency=1, poll_interval=60.0)
    first_failed = asyncio.Event()
    go_on = asyncio.Event()

    @worker.handler(finalized)
    async def handle(job: Job[Item], ctx: JobContext[Any, Done]) -> Done:
        async def finish(tx: Any, enqueue_job: EnqueueJob[Done]) -> Done:
            if job.attempt == 1:
                # Checked at COMMIT, after the job's completion was written.
                await tx.execute(f"INSERT INTO {table} VALUES (1), (1)")
            return Done(job.input.n)

        if job.attempt == 2:
            await go_on.wait()
        try:
            return await ctx.finalize(finish)
        except Exception:
            first_failed.set()
            raise

    async with worker:
        handle_ = await app.enqueue_job_chain(None, finalized, Item(3))
        async with asyncio.timeout(WAIT_S):
            await first_failed.wait()
        # Signals arrive in commit order: one the failed finalize had sent would come
        # before this marker.
        await setup.listener.publish_chain_completed(chain_id="marker")
        await eventually(lambda: "marker" in setup.completed, timeout=WAIT_S)
        assert setup.completed == ["marker"]
        go_on.set()
        done = await app.wait_for_chain(handle_, timeout=WAIT_S, poll_interval=60.0)
    assert done == Done(3)
    await eventually(lambda: setup.completed == ["marker", handle_.id], timeout=WAIT_S)


async def test_signals_published_together_arrive_as_separate_calls_would(
    postgres_url: str,
) -> None:
    prefix = unique_name("ac")
    sender = PostgresNotifyAdapter(postgres_url, channel_prefix=prefix)
    listener = PostgresNotifyAdapter(postgres_url, channel_prefix=prefix)
    scheduled: list[ScheduledSignal] = []
    completed: list[str] = []

    async def on_scheduled(signal: ScheduledSignal) -> None:
        scheduled.append(signal)

    async def on_completed(chain_id: str) -> None:
        completed.append(chain_id)

    try:
        await listener.subscribe_job_scheduled(queues=["a", "b"], listener=on_scheduled)
        await listener.subscribe_chain_completed(chain_id=None, listener=on_completed)
        await sender.publish_signals(scheduled_queues=["a", "b", "a"], ended_chains=["c1", "c2"])
        await eventually(lambda: len(scheduled) == 2 and len(completed) == 2, timeout=WAIT_S)
        # One job-scheduled count per queue, as PostgreSQL folds identical payloads.
        assert sorted((s.queue, s.count) for s in scheduled) == [("a", 2), ("b", 1)]
        assert sorted(completed) == ["c1", "c2"]
    finally:
        await listener.close()
        await sender.close()
