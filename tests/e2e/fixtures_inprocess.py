"""Helpers for the single-process end-to-end scenarios: an application on a
backend, the application's own transaction on each backend's driver, workers
with test-friendly timings, and waiting for values and events instead of sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar
from uuid import uuid4

import asyncpg

import queuert
from queuert import ChainDef, Queuert, StateAdapter, Worker
from queuert.conformance.support import eventually
from tests.e2e.backends import Backend
from tests.servers import require_postgres

T = TypeVar("T")


async def wait_until(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = 5.0,
    interval: float = 0.01,
    what: str = "the condition",
) -> T:
    """Await ``probe()`` until it returns a truthy value and return that value.
    Fails the test after ``timeout`` seconds."""
    value = await eventually(probe, what=what, timeout=timeout, interval=interval)
    assert value is not None  # only a truthy value ends the wait
    return value


async def wait_for_event(event: asyncio.Event, *, timeout: float = 5.0, what: str = "") -> None:
    """Wait for ``event``; fail the test after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what or event}") from None


@asynccontextmanager
async def open_app(
    backend: Backend, chains: Sequence[ChainDef[Any, Any]], *, notify: bool = True
) -> AsyncIterator[Queuert[Any]]:
    """An application on ``backend`` with an in-process notifier (or none). The
    notifier is closed on exit; the backend fixture closes the store."""
    adapter = queuert.InProcessNotifyAdapter() if notify else None
    app: Queuert[Any] = queuert.Queuert(state=backend.state, notify=adapter, chains=chains)
    try:
        yield app
    finally:
        if adapter is not None:
            await adapter.close()


def make_worker(app: Queuert[Any], **options: Any) -> Worker[Any]:
    """A worker that polls often and gives up on stuck handlers quickly when stopped."""
    options.setdefault("poll_interval", 0.1)
    options.setdefault("shutdown_timeout", 2.0)
    return app.worker(**options)


@asynccontextmanager
async def caller_transaction(backend: Backend, *, native: bool = True) -> AsyncIterator[Any]:
    """The application's own transaction on the backend's driver: a memory
    transaction, an aiosqlite connection of the application's own in a transaction,
    an asyncpg connection from the adapter's pool inside ``conn.transaction()``, or a
    session of the MongoDB adapter's client with a transaction started.
    With ``native=False``, the one the adapter's ``transaction()`` opens.
    Commits when the block exits normally, rolls back when it raises."""
    state: Any = backend.state
    if backend.name == "memory" or not native:
        async with state.transaction() as tx:
            yield tx
    elif backend.name == "sqlite":
        async with state.connect() as conn, state.transaction(connection=conn) as tx:
            yield tx
    elif backend.name == "mongodb":
        async with (
            state.client.start_session() as session,
            await session.start_transaction(),
        ):
            yield session
    else:
        async with state.pool.acquire() as conn, conn.transaction():
            yield conn


@asynccontextmanager
async def unmigrated_state(
    name: str, tmp_path: Path
) -> AsyncIterator[tuple[StateAdapter[Any], str]]:
    """A state adapter on a fresh store whose schema was never created, and the name
    of that store as its errors should show it (file path or schema name)."""
    from queuert import urls

    if name == "memory":
        yield queuert.MemoryStateAdapter(), "memory"
        return
    if name == "sqlite":
        path = tmp_path / f"unmigrated-{uuid4().hex[:8]}.db"
        state = await urls.state_from_url(f"sqlite:///{path}")
        try:
            yield state, str(path)
        finally:
            await state.close()
        return
    if name == "mongodb":
        from tests.mongodb.server import (
            drop_database,
            require_mongodb,
            unique_database,
            with_database,
        )

        base = require_mongodb()
        database = unique_database("e2e_unmigrated")
        state = await urls.state_from_url(with_database(base, database))
        try:
            yield state, database
        finally:
            await state.close()
            await drop_database(base, database)  # the test may migrate it
        return
    base = require_postgres()
    schema = f"e2e_unmigrated_{uuid4().hex[:12]}"
    sep = "&" if "?" in base else "?"
    state = await urls.state_from_url(f"{base}{sep}schema={schema}")
    try:
        yield state, schema
    finally:
        await state.close()
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


async def job_count(app: Queuert[Any]) -> int:
    """How many jobs the store holds (all statuses)."""
    total = 0
    cursor: str | None = None
    while True:
        page = await app.list_jobs(after=cursor, limit=1000)
        total += len(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return total
