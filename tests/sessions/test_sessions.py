"""An SQLAlchemy AsyncSession or AsyncConnection as the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

import queuert
from queuert_postgres import PostgresStateAdapter
from tests.servers import require_postgres
from tests.sessions.conftest import Stack, sqlalchemy_url
from tests.waiting import eventually


@dataclass
class Item:
    item_id: int


@dataclass
class Done:
    ok: bool


item_chain = queuert.chain("sa-item", input=Item, output=Done)


def app_for(stack: Stack, notify: queuert.NotifyAdapter | None = None) -> queuert.Queuert[object]:
    return queuert.Queuert(state=stack.state, notify=notify, chains=[item_chain])


async def count(stack: Stack) -> int:
    async with stack.engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {stack.items}"))).scalar_one())


async def insert_item(session: AsyncSession, stack: Stack) -> int:
    result = await session.execute(
        text(f"INSERT INTO {stack.items} (name) VALUES ('cat') RETURNING id")
    )
    return int(result.scalar_one())


async def test_a_chain_started_in_a_session_commits_with_it(stack: Stack) -> None:
    app = app_for(stack)
    async with AsyncSession(stack.engine) as session:
        item_id = await insert_item(session, stack)
        handle = await app.enqueue_job_chain(session, item_chain, Item(item_id))
        # Inside the session's transaction: visible to it, not to anyone else yet.
        assert await app.get_chain(handle.id, tx=session) is not None
        assert await app.get_chain(handle.id) is None
        await session.commit()
    chain = await app.get_chain(handle.id)
    assert chain is not None and chain.status is queuert.JobStatus.PENDING
    assert await count(stack) == 1


async def test_a_rolled_back_session_leaves_neither_row_nor_chain(stack: Stack) -> None:
    app = app_for(stack)
    async with AsyncSession(stack.engine) as session:
        item_id = await insert_item(session, stack)
        handle = await app.enqueue_job_chain(session, item_chain, Item(item_id))
        await session.rollback()
    assert await app.get_chain(handle.id) is None
    assert await count(stack) == 0


async def test_a_chain_started_first_in_a_session_is_still_in_its_transaction(
    stack: Stack,
) -> None:
    # Nothing ran in the session before the chain starts: the driver had no
    # transaction open yet, and the chain must not commit on its own.
    app = app_for(stack)
    async with AsyncSession(stack.engine) as session:
        handle = await app.enqueue_job_chain(session, item_chain, Item(1))
        await insert_item(session, stack)
        await session.rollback()
    assert await app.get_chain(handle.id) is None
    assert await count(stack) == 0


async def test_an_async_connection_is_a_transaction_too(stack: Stack) -> None:
    app = app_for(stack)
    # --8<-- [start:connection]
    async with stack.engine.connect() as conn:
        async with conn.begin():
            handle = await app.enqueue_job_chain(conn, item_chain, Item(1))
            page = await app.list_chains(tx=conn)
            assert [c.id for c in page.items] == [handle.id]
        async with conn.begin() as transaction:
            dropped = await app.enqueue_job_chain(conn, item_chain, Item(2))
            await transaction.rollback()
    # --8<-- [end:connection]
    assert await app.get_chain(handle.id) is not None
    assert await app.get_chain(dropped.id) is None


async def test_cancel_and_delete_take_a_session(stack: Stack) -> None:
    app = app_for(stack)
    handle = await app.enqueue_job_chain(None, item_chain, Item(1))
    async with AsyncSession(stack.engine) as session:
        record = await app.cancel_chain(handle.id, tx=session)
        assert record.status is queuert.JobStatus.CANCELLED
        await session.rollback()
    chain = await app.get_chain(handle.id)
    assert chain is not None and chain.status is queuert.JobStatus.PENDING
    async with AsyncSession(stack.engine) as session, session.begin():
        assert await app.delete_chains([handle.id], tx=session) == 1
        assert (await app.list_jobs(tx=session, chain_id=handle.id)).items == []
        assert await app.get_job(handle.id, tx=session) is None
    assert await app.get_chain(handle.id) is None


async def test_notifications_leave_after_the_session_commits_and_never_after_rollback(
    stack: Stack,
) -> None:
    notify = queuert.InProcessNotifyAdapter()
    app = app_for(stack, notify)
    signals: list[tuple[str, int]] = []

    async def on_scheduled(signal: queuert.ScheduledSignal) -> None:
        signals.append((signal.queue, signal.count))

    await notify.subscribe_job_scheduled(queues=[item_chain.name], listener=on_scheduled)
    async with AsyncSession(stack.engine) as session:
        await app.enqueue_job_chain(session, item_chain, Item(1))
        await app.enqueue_job_chain(session, item_chain, Item(2))
        await session.rollback()
        await app.enqueue_job_chains(session, item_chain, [Item(3), Item(4), Item(5)])
        await session.commit()
    await eventually(lambda: (item_chain.name, 3) in signals, message="no signal after commit")
    # Only the committed transaction's three jobs were announced.
    assert signals == [(item_chain.name, 3)]


async def test_a_session_of_another_database_is_refused(stack: Stack, tmp_path: Path) -> None:
    app = app_for(stack)
    if stack.backend == "postgresql":
        other = create_async_engine(sqlalchemy_url(require_postgres(), "template1"))
    else:
        other = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'other.db'}")
    try:
        async with AsyncSession(other) as session:
            with pytest.raises(queuert.ForeignTransactionError, match="another database"):
                await app.enqueue_job_chain(session, item_chain, Item(1))
    finally:
        await other.dispose()
    assert (await app.list_chains()).items == []


async def test_a_session_of_another_dialect_is_refused(tmp_path: Path) -> None:
    state = await PostgresStateAdapter.connect(require_postgres())
    app = queuert.Queuert(state=state, chains=[item_chain])
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    try:
        async with AsyncSession(engine) as session:
            with pytest.raises(queuert.ForeignTransactionError, match=r"sqlite\+aiosqlite"):
                await app.enqueue_job_chain(session, item_chain, Item(1))
    finally:
        await engine.dispose()
        await state.close()


async def test_an_adapter_without_sessions_refuses_one(tmp_path: Path) -> None:
    app = queuert.Queuert(state=queuert.MemoryStateAdapter(), chains=[item_chain])
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    try:
        async with AsyncSession(engine) as session:
            with pytest.raises(queuert.ForeignTransactionError, match="MemoryStateAdapter"):
                await app.enqueue_job_chain(session, item_chain, Item(1))
    finally:
        await engine.dispose()
