"""Reading, cancelling, retrying and completing chains with the synchronous API, and
the records it writes: the same as the asynchronous API's."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

import queuert
from queuert.sync import SyncClient
from tests.sync.conftest import SyncBackend


@dataclass
class Order:
    order_id: int


@dataclass
class Shipped:
    parcels: int


@dataclass
class Approval:
    by: str


order_chain = queuert.chain("sync-order", input=Order, output=Shipped)
approve = order_chain.queue("approve", input=Approval)


def make_app(backend: SyncBackend) -> queuert.Queuert[Any]:
    return queuert.Queuert(state=backend.state, chains=[order_chain])


# What differs between two chains started alike: their ids and the moments.
_VARYING = ("id", "last_job_id", "created_at", "updated_at", "scheduled_at", "chain_id")


def _shape(record: Any) -> dict[str, Any]:
    fields = dataclasses.asdict(record)
    return {
        name: (type(value), None if name in _VARYING else value) for name, value in fields.items()
    }


async def test_records_are_those_the_async_api_writes(backend: SyncBackend) -> None:
    app = make_app(backend)
    client = SyncClient(app)
    options: dict[str, Any] = {"delay": timedelta(hours=1), "priority": 3}
    by_async = await app.enqueue_job_chain(None, order_chain, Order(5), **options)

    def start() -> tuple[str, Any, Any]:
        with backend.transaction() as conn:
            handle = client.enqueue_job_chain(conn, order_chain, Order(5), **options)
            return handle.id, client.get_chain(conn, handle.id), client.get_job(conn, handle.id)

    chain_id, sync_chain, sync_job = await asyncio.to_thread(start)
    async_chain = await app.get_chain(by_async.id)
    async_job = await app.get_job(by_async.id)
    assert async_chain is not None and async_job is not None
    assert _shape(sync_chain) == _shape(async_chain)
    assert _shape(sync_job) == _shape(async_job)
    # Read back through either API, the chain started synchronously is the same record.
    assert await app.get_chain(chain_id) == sync_chain
    assert await app.get_job(chain_id) == sync_job
    assert repr(await app.get_chain(chain_id)) == repr(sync_chain)


async def test_get_cancel_retry_and_complete(backend: SyncBackend) -> None:
    app = make_app(backend)
    client = SyncClient(app)

    def operate() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        with backend.transaction() as conn:
            handle = client.enqueue_job_chain(conn, order_chain, Order(1))
        chain_id = handle.id
        with backend.transaction() as conn:
            seen["read"] = client.get_chain(conn, chain_id)
            seen["missing"] = client.get_chain(conn, "no-such-chain")
            seen["cancelled"] = client.cancel_chain(conn, chain_id)
        with backend.transaction() as conn, pytest.raises(queuert.ChainEndedError):
            client.cancel_chain(conn, chain_id)
        with backend.transaction() as conn:
            seen["retried"] = client.retry_chain(conn, chain_id)
        with backend.transaction() as conn, pytest.raises(queuert.JobStateError):
            client.retry_chain(conn, chain_id)
        with backend.transaction() as conn, pytest.raises(queuert.JobNotFoundError):
            client.retry_chain(conn, "no-such-chain")
        with backend.transaction() as conn:
            seen["continued"] = client.complete_job(
                conn, chain_id, continue_with=(approve, Approval(by="ops"))
            )
        with backend.transaction() as conn:
            seen["completed"] = client.complete_job(
                conn, seen["continued"].next_job_id, output=Shipped(2)
            )
        with backend.transaction() as conn, pytest.raises(queuert.ChainEndedError):
            client.complete_job(conn, chain_id, output=Shipped(3))
        with backend.transaction() as conn, pytest.raises(queuert.ValidationError):
            client.complete_job(conn, chain_id)
        seen["handle"] = handle
        return seen

    seen = await asyncio.to_thread(operate)
    handle = seen["handle"]
    assert seen["read"] is not None and seen["read"].status is queuert.JobStatus.PENDING
    assert seen["missing"] is None
    assert seen["cancelled"].status is queuert.JobStatus.CANCELLED
    assert seen["retried"].status is queuert.JobStatus.PENDING
    assert seen["continued"].continued
    assert seen["completed"].status is queuert.JobStatus.COMPLETED
    assert await app.wait_for_chain(handle, timeout=10) == Shipped(2)
    chain = await app.get_chain(handle.id)
    assert chain is not None and chain.last_queue == approve.name


async def test_a_cancel_that_rolls_back_leaves_the_chain_running(backend: SyncBackend) -> None:
    app = make_app(backend)
    client = SyncClient(app)
    handle = await app.enqueue_job_chain(None, order_chain, Order(1))

    class Undo(Exception):
        pass

    def cancel() -> None:
        with backend.transaction() as conn:
            assert client.cancel_chain(conn, handle.id).status is queuert.JobStatus.CANCELLED
            raise Undo

    with pytest.raises(Undo):
        await asyncio.to_thread(cancel)
    chain = await app.get_chain(handle.id)
    assert chain is not None and chain.status is queuert.JobStatus.PENDING


async def test_deduplication_and_blockers(backend: SyncBackend) -> None:
    app = make_app(backend)
    client = SyncClient(app)
    worker = app.worker(concurrency=2, poll_interval=0.05)

    @worker.handler(order_chain)
    async def ship(job: queuert.Job[Order], ctx: queuert.JobContext[Any, Shipped]) -> Shipped:
        async def commit(tx: Any, enqueue_job: queuert.EnqueueJob[Shipped]) -> Shipped:
            return Shipped(job.input.order_id)

        return await ctx.finalize(commit)

    key = f"order-{backend.name}"

    def start() -> tuple[Any, ...]:
        with backend.transaction() as conn:
            first = client.enqueue_job_chain(conn, order_chain, Order(1), dedup_key=key)
            again = client.enqueue_job_chain(conn, order_chain, Order(2), dedup_key=key)
            many = client.enqueue_job_chains(
                conn, order_chain, [Order(3), Order(4)], dedup_keys=[key, key + "-b"]
            )
            waiting = client.enqueue_job_chain(conn, order_chain, Order(5), blockers=[first])
            job = client.get_job(conn, waiting.id)
            return first, again, many, waiting, job

    first, again, many, waiting, job = await asyncio.to_thread(start)
    assert again.id == first.id and again.deduplicated and not first.deduplicated
    assert many[0].id == first.id and not many[1].deduplicated
    assert job.status is queuert.JobStatus.BLOCKED
    chain = await app.get_chain(first.id)
    assert chain is not None and chain.dedup_key == key
    async with worker:
        assert await app.wait_for_chain(waiting, timeout=20) == Shipped(5)
        assert await app.wait_for_chain(first, timeout=20) == Shipped(1)


async def test_a_missing_blocker_is_named_and_nothing_is_written(backend: SyncBackend) -> None:
    app = make_app(backend)
    client = SyncClient(app)
    ghost = queuert.ChainHandle("ghost-chain", order_chain)
    before = len((await app.list_chains(chain=order_chain, limit=10_000)).items)

    def start() -> None:
        with backend.transaction() as conn:
            client.enqueue_job_chain(conn, order_chain, Order(1), blockers=[ghost])

    with pytest.raises(queuert.JobNotFoundError, match="ghost-chain"):
        await asyncio.to_thread(start)
    assert len((await app.list_chains(chain=order_chain, limit=10_000)).items) == before


async def test_a_cancel_fails_the_chains_waiting_on_it_in_turn(backend: SyncBackend) -> None:
    """The blocker failure reaches the jobs waiting on the jobs it fails, as it does
    through the asynchronous API (on SQLite through recursive triggers, which the
    application's connection may not have enabled itself)."""
    app = make_app(backend)
    client = SyncClient(app)

    def run() -> list[str]:
        with backend.transaction() as conn:
            first = client.enqueue_job_chain(conn, order_chain, Order(1))
            second = client.enqueue_job_chain(conn, order_chain, Order(2), blockers=[first])
            third = client.enqueue_job_chain(conn, order_chain, Order(3), blockers=[second])
        with backend.transaction() as conn:
            client.cancel_chain(conn, first.id)
        return [second.id, third.id]

    waiting = await asyncio.to_thread(run)
    statuses = []
    for chain_id in waiting:
        chain = await app.get_chain(chain_id)
        assert chain is not None
        statuses.append(chain.status)
    assert statuses == [queuert.JobStatus.FAILED, queuert.JobStatus.FAILED]
