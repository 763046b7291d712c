"""The application's own connections as ``tx``: a plain aiosqlite connection and an
SQLAlchemy session or connection on ``sqlite+aiosqlite``, which have none of the
settings the adapter gives its own connections. The schema's triggers behave
through them as through the adapter's connections."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiosqlite
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

import queuert
from queuert_sqlite import SqliteStateAdapter


@dataclass
class Order:
    number: int


orders = queuert.chain("sqlite-caller-order", input=Order, output=Order)


@asynccontextmanager
async def aiosqlite_tx(path: str) -> AsyncIterator[Any]:
    """The application's own aiosqlite connection, in a transaction it began."""
    async with aiosqlite.connect(path) as conn:
        await conn.execute("BEGIN")
        yield conn
        await conn.commit()


@asynccontextmanager
async def session_tx(path: str) -> AsyncIterator[Any]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with AsyncSession(engine) as session, session.begin():
            yield session
    finally:
        await engine.dispose()


@asynccontextmanager
async def connection_tx(path: str) -> AsyncIterator[Any]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.connect() as conn, conn.begin():
            yield conn
    finally:
        await engine.dispose()


CALLERS: dict[str, Callable[[str], Any]] = {
    "aiosqlite": aiosqlite_tx,
    "sqlalchemy-session": session_tx,
    "sqlalchemy-connection": connection_tx,
}


@pytest.fixture(params=list(CALLERS))
def caller_tx(request: pytest.FixtureRequest) -> Callable[[str], Any]:
    return CALLERS[request.param]


async def statuses(app: queuert.Queuert[Any], chain_ids: list[str]) -> list[queuert.JobStatus]:
    found = []
    for chain_id in chain_ids:
        chain = await app.get_chain(chain_id)
        assert chain is not None
        found.append(chain.status)
    return found


async def test_a_cancel_fails_the_chains_waiting_on_it_in_turn(
    adapter: SqliteStateAdapter, caller_tx: Callable[[str], Any]
) -> None:
    """C waits on B, which waits on A: cancelling A in the application's transaction
    fails B and, through B's failure, C (recursive triggers, which the application's
    connection does not enable itself)."""
    app = queuert.Queuert(state=adapter, chains=[orders])
    first = await app.enqueue_job_chain(None, orders, Order(1))
    second = await app.enqueue_job_chain(None, orders, Order(2), blockers=[first])
    third = await app.enqueue_job_chain(None, orders, Order(3), blockers=[second])
    async with caller_tx(adapter.path) as tx:
        await app.cancel_chain(first.id, tx=tx)
    assert await statuses(app, [first.id, second.id, third.id]) == [
        queuert.JobStatus.CANCELLED,
        queuert.JobStatus.FAILED,
        queuert.JobStatus.FAILED,
    ]


async def test_a_blocker_failing_in_the_same_transaction_fails_the_chains_in_turn(
    adapter: SqliteStateAdapter, caller_tx: Callable[[str], Any]
) -> None:
    """The chains are started and A cancelled all in the application's one
    transaction (the recursive setting is taken inside an open transaction)."""
    app = queuert.Queuert(state=adapter, chains=[orders])
    async with caller_tx(adapter.path) as tx:
        first = await app.enqueue_job_chain(tx, orders, Order(1))
        second = await app.enqueue_job_chain(tx, orders, Order(2), blockers=[first])
        third = await app.enqueue_job_chain(tx, orders, Order(3), blockers=[second])
        await app.cancel_chain(first.id, tx=tx)
    assert await statuses(app, [second.id, third.id]) == [
        queuert.JobStatus.FAILED,
        queuert.JobStatus.FAILED,
    ]


async def blocker_rows(path: str) -> int:
    """The rows of the blocker table, deleted chains' rows included."""
    async with aiosqlite.connect(path) as conn:
        rows = list(await conn.execute_fetchall("SELECT count(*) FROM queuert_job_blockers"))
    return int(rows[0][0])


async def test_deleting_chains_deletes_their_blocker_rows(
    adapter: SqliteStateAdapter, caller_tx: Callable[[str], Any]
) -> None:
    """The rows saying what a deleted job waited on go with it, also when the
    application's connection does not enforce foreign keys (SQLite's default,
    which cannot be changed inside a transaction)."""
    app = queuert.Queuert(state=adapter, chains=[orders])
    first = await app.enqueue_job_chain(None, orders, Order(1))
    second = await app.enqueue_job_chain(None, orders, Order(2), blockers=[first])
    await app.enqueue_job_chain(None, orders, Order(3), blockers=[second])
    assert await blocker_rows(adapter.path) == 2
    async with caller_tx(adapter.path) as tx:
        assert await app.delete_chains([first.id], cascade=True, tx=tx) == 3
    assert await blocker_rows(adapter.path) == 0


async def test_purging_chains_deletes_their_blocker_rows(
    adapter: SqliteStateAdapter, caller_tx: Callable[[str], Any]
) -> None:
    app = queuert.Queuert(state=adapter, chains=[orders])
    first = await app.enqueue_job_chain(None, orders, Order(1))
    second = await app.enqueue_job_chain(None, orders, Order(2), blockers=[first])
    await app.enqueue_job_chain(None, orders, Order(3), blockers=[second])
    await app.cancel_chain(first.id)
    later = datetime.now(UTC) + timedelta(hours=1)
    async with caller_tx(adapter.path) as tx:
        purged = await app.purge(ended_before=later, statuses=["cancelled", "failed"], tx=tx)
    assert purged == 3
    assert await blocker_rows(adapter.path) == 0
