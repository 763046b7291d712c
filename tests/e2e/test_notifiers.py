"""The same application code runs unchanged with every notifier, and a notifier
wakes an idle worker long before its poll interval; PostgreSQL LISTEN/NOTIFY
recovers by itself when its listening connection is killed."""

from __future__ import annotations

import time
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest

import queuert
from queuert_postgres import PostgresNotifyAdapter
from tests.e2e.backends import Backend, make_backend, open_backend, schema_of
from tests.e2e.processes import TWO_STEP, Done, Step, register_handlers
from tests.servers import require_postgres, require_redis
from tests.waiting import eventually

IDLE_POLL_S = 30.0
"""Poll interval of the workers a notifier must wake: far longer than any wait here."""

FAST_S = 5.0
"""What "without waiting for the poll interval" means in these tests."""


async def run_application(state_url: str, notify_url: str, poll_interval: float) -> float:
    """The application: a worker waits idle, three two-step chains are started in one
    transaction, and they are awaited. Returns the seconds from commit to the
    last chain's completion."""
    app = await queuert.Queuert.from_url(state=state_url, notify=notify_url, chains=[TWO_STEP])
    try:
        # Room for every chain at once: after a partial batch the worker waits for a
        # notification (or its poll interval) before it looks for the next step.
        worker = app.worker(concurrency=4, poll_interval=poll_interval)
        register_handlers(worker, schema=schema_of(state_url))
        async with worker:
            await eventually(
                lambda: app.metrics.get("worker.acquire_attempts") >= 1,
                timeout=10,
                interval=0.01,
                message="worker never looked for jobs",
            )
            start = time.monotonic()
            async with app.with_notify(), app.state.transaction() as tx:
                handles = await app.enqueue_job_chains(tx, TWO_STEP, [Step(n) for n in range(3)])
            outputs: list[Done] = []
            for handle in handles:
                outputs.append(await app.wait_for_chain(handle, timeout=FAST_S, poll_interval=0.1))
            elapsed = time.monotonic() - start
    finally:
        await app.close()
    assert [(o.n, o.steps) for o in outputs] == [(0, 2), (1, 2), (2, 2)]
    return elapsed


@pytest.mark.parametrize("notifier", ["memory", "postgres", "redis", "mongodb", "none"])
async def test_same_application_runs_with_each_notifier(notifier: str, tmp_path: Path) -> None:
    store = notifier if notifier in ("postgres", "mongodb") else "sqlite"
    async with open_backend(store, tmp_path) as backend:
        assert backend.url is not None
        poll_interval = IDLE_POLL_S
        if notifier == "memory":
            notify_url = "memory://"
        elif notifier == "postgres":
            notify_url = backend.url  # channels named after the state's schema
        elif notifier == "mongodb":
            notify_url = backend.url  # signals in the state's database
        elif notifier == "redis":
            notify_url = f"{require_redis()}?prefix=e2e-{uuid4().hex}:"
        else:
            notify_url = "none"
            poll_interval = 0.1  # no notifier: only polling finds the jobs

        elapsed = await run_application(backend.url, notify_url, poll_interval)

        assert elapsed < FAST_S
        writes = await backend.app_writes()
        assert len(writes) == 6 and set(writes.values()) == {1}


async def listener_pids(dsn: str, application_name: str) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1", application_name
        )
    finally:
        await conn.close()
    return [row["pid"] for row in rows]


async def commit_chain(
    app: queuert.Queuert[asyncpg.Connection], n: int
) -> queuert.ChainHandle[Done]:
    """Start a chain in the application's own transaction; the notification leaves
    when it committed."""
    async with app.with_notify(), app.state.transaction() as tx:
        return await app.enqueue_job_chain(tx, TWO_STEP, Step(n))


async def test_postgres_listen_notify_wakes_idle_worker_and_survives_listener_kill(
    tmp_path: Path,
) -> None:
    dsn = require_postgres()
    backend: Backend = await make_backend("postgres", tmp_path)
    assert backend.url is not None
    channel_prefix = schema_of(backend.url)
    assert channel_prefix is not None
    listener_name = f"e2e-listener-{uuid4().hex[:12]}"
    worker_state = await backend.open_another()
    worker_app = queuert.Queuert(
        state=worker_state,
        notify=PostgresNotifyAdapter(
            dsn, channel_prefix=channel_prefix, application_name=listener_name
        ),
        chains=[TWO_STEP],
    )
    producer = queuert.Queuert(
        state=backend.state,
        notify=PostgresNotifyAdapter(dsn, channel_prefix=channel_prefix),
        chains=[TWO_STEP],
    )
    try:
        worker = worker_app.worker(concurrency=4, poll_interval=IDLE_POLL_S)
        register_handlers(worker, schema=channel_prefix)
        async with worker:
            await eventually(
                lambda: worker_app.metrics.get("worker.acquire_attempts") >= 1,
                timeout=10,
                interval=0.01,
            )
            start = time.monotonic()
            handle = await commit_chain(producer, 0)
            await producer.wait_for_chain(handle, timeout=FAST_S, poll_interval=0.1)
            assert time.monotonic() - start < FAST_S

            [old_pid] = await listener_pids(dsn, listener_name)
            conn = await asyncpg.connect(dsn)
            try:
                assert await conn.fetchval("SELECT pg_terminate_backend($1)", old_pid)
            finally:
                await conn.close()

            async def old_listener_gone() -> bool:
                return old_pid not in await listener_pids(dsn, listener_name)

            await eventually(
                old_listener_gone, timeout=10, interval=0.05, message="listener not terminated"
            )

            # Notifications sent while the listener reconnects are lost; one of the
            # following chains must again be picked up at once.
            deadline = time.monotonic() + 20
            n = 1
            while True:
                handle = await commit_chain(producer, n)
                try:
                    await producer.wait_for_chain(handle, timeout=1.0, poll_interval=0.05)
                    break
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise AssertionError(
                            "no chain was picked up promptly after the listener was killed"
                        ) from None
                n += 1
            new_pids = await listener_pids(dsn, listener_name)
            assert new_pids and old_pid not in new_pids
    finally:
        await worker_app.close()
        await producer.close()
        await backend.close()
