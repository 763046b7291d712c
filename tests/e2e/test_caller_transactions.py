"""Transactions that are not what they claim: a ``tx`` that already committed, rolled
back or lost its connection, or an object that is no transaction at all, is refused
with a named error and nothing written; a finalize callback that ends its own
transaction fails its attempt with nothing of the job's end written; claim's
transaction keeps the job from being reaped while it is open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiosqlite
import pytest

import queuert
from queuert import (
    ChainFailedError,
    EnqueueJob,
    InvalidTransactionError,
    Job,
    JobContext,
    JobRecord,
    RetryPolicy,
    TransactionClosedError,
)
from tests.e2e.backends import Backend
from tests.e2e.fixtures_inprocess import job_count, make_worker, open_app, wait_until


@dataclass
class Order:
    key: str


@dataclass
class Done:
    key: str


orders = queuert.chain("e2e-caller-tx", input=Order, output=Done, retry=RetryPolicy(max_attempts=1))

ENDINGS = ["committed", "rolled back", "connection closed"]


class Rollback(Exception):
    pass


@asynccontextmanager
async def ended_transaction(backend: Backend, ending: str) -> AsyncIterator[Any]:
    """The application's transaction object after its transaction ended as ``ending``."""
    state: Any = backend.state
    if backend.name == "memory":
        # The store has no connection to close: every ending is the block's end.
        with _swallow(Rollback):
            async with state.transaction() as tx:
                if ending == "rolled back":
                    raise Rollback
        yield tx
    elif backend.name == "sqlite":
        conn: aiosqlite.Connection = await state.connect()
        try:
            with _swallow(Rollback):
                async with state.transaction(connection=conn):
                    if ending == "rolled back":
                        raise Rollback
            if ending == "connection closed":
                await conn.close()
            yield conn
        finally:
            await conn.close()
    else:
        async with state.pool.acquire() as pooled:
            with _swallow(Rollback):
                async with pooled.transaction():
                    if ending == "rolled back":
                        raise Rollback
            if ending != "connection closed":
                yield pooled
                return
        yield pooled  # released back to the pool: the caller no longer holds it


class _swallow:
    def __init__(self, kind: type[BaseException]) -> None:
        self.kind = kind

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, self.kind)


@pytest.mark.parametrize("ending", ENDINGS)
async def test_a_transaction_that_ended_is_refused_and_nothing_is_written(
    backend: Backend, ending: str
) -> None:
    async with open_app(backend, [orders]) as app:
        async with ended_transaction(backend, ending) as tx:
            with pytest.raises(TransactionClosedError):
                await app.enqueue_job_chain(tx, orders, Order("late"))
            with pytest.raises(TransactionClosedError):
                await app.enqueue_job_chains(tx, orders, [Order("a"), Order("b")])
            with pytest.raises(TransactionClosedError):
                await app.list_jobs(tx=tx)
        assert await job_count(app) == 0


async def test_an_object_that_is_no_transaction_is_refused(backend: Backend) -> None:
    async with open_app(backend, [orders]) as app:
        for wrong in ("BEGIN", object(), 42):
            with pytest.raises(InvalidTransactionError, match="tx"):
                await app.enqueue_job_chain(wrong, orders, Order("x"))
            with pytest.raises(InvalidTransactionError):
                await app.get_chain("some-id", tx=wrong)
        assert await job_count(app) == 0


async def end_it(tx: Any) -> None:
    """What a helper that commits or rolls back by itself does to the callback's tx."""
    if isinstance(tx, aiosqlite.Connection):
        await tx.rollback()
    else:
        await tx.execute("ROLLBACK")


async def test_a_finalize_callback_that_ends_its_transaction_fails_the_attempt(
    shared_backend: Backend,
) -> None:
    backend = shared_backend
    async with open_app(backend, [orders]) as app:
        worker = make_worker(app)

        @worker.handler(orders)
        async def handle(job: Job[Order], ctx: JobContext[Any, Done]) -> Done | Any:
            async def commit(tx: Any, enqueue_job: EnqueueJob[Done]) -> Done:
                await backend.app_write(tx, job.input.key)
                await end_it(tx)
                return Done(job.input.key)

            return await ctx.finalize(commit)

        async with worker:
            handle_ = await app.enqueue_job_chain(None, orders, Order("rolled-back"))
            with pytest.raises(ChainFailedError) as failed:
                await app.wait_for_chain(handle_, timeout=5.0)

    error = failed.value.error
    assert isinstance(error, queuert.JobError)
    assert error.type == "queuert.errors.TransactionClosedError"
    assert "ended its transaction" in error.message
    assert await backend.app_writes() == {}


async def test_claims_transaction_keeps_the_job_from_being_reaped(backend: Backend) -> None:
    if not backend.state.capabilities.concurrent_transactions:
        pytest.skip("one transaction at a time: no reaper can run during a claim")
    other = await backend.open_another()
    reaped_during_claim: list[list[JobRecord]] = []
    async with open_app(backend, [orders]) as app:
        # The worker's own reaper stays away; the other adapter plays another worker's.
        worker = make_worker(app, lease_ms=200, reaper_interval=3600)

        @worker.handler(orders)
        async def handle(job: Job[Order], ctx: JobContext[Any, Done]) -> Done:
            async def read(tx: Any) -> None:
                await backend.app_write(tx, "claimed")
                await wait_until(
                    lambda: _expired(other, job.id), what="the lease to expire", timeout=5
                )
                reaped_during_claim.append(await other.reap_expired_leases(tx=None, limit=10))

            await ctx.claim(read)
            return Done(job.input.key)

        try:
            async with worker:
                await app.enqueue_job_chain(None, orders, Order("claimed"))
                await wait_until(
                    lambda: _true(bool(reaped_during_claim)), what="the claim to try a reap"
                )
        finally:
            await other.close()
    assert reaped_during_claim == [[]]


async def _expired(state: Any, job_id: str) -> bool:
    record = await state.get_job(tx=None, job_id=job_id)
    if record is None or record.leased_until is None:
        return False
    now = await _database_now(state)
    return bool(record.leased_until < now)


async def _database_now(state: Any) -> Any:
    async with state.pool.acquire() as conn:
        return await conn.fetchval("SELECT statement_timestamp()")


async def _true(value: bool) -> bool:
    await asyncio.sleep(0)
    return value
