"""Chains started with the synchronous API inside the application's transaction:
run by an asynchronous worker once committed, absent after a rollback, refused
with the asynchronous API's errors (and nothing written) when the input is bad."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

import queuert
from queuert.sync import SyncClient
from tests.sync.conftest import SyncBackend


@dataclass
class Upload:
    image_id: int


@dataclass
class Stored:
    size: int


image_chain = queuert.chain("sync-image", input=Upload, output=Stored)
other_chain = queuert.chain("sync-other", input=Upload, output=Stored)


def make_app(backend: SyncBackend) -> queuert.Queuert[Any]:
    return queuert.Queuert(state=backend.state, chains=[image_chain])


async def test_a_committed_chain_is_run_by_an_async_worker(backend: SyncBackend) -> None:
    app = make_app(backend)
    client = SyncClient(app)
    worker = app.worker(concurrency=2, poll_interval=0.05)

    @worker.handler(image_chain)
    async def store(job: queuert.Job[Upload], ctx: queuert.JobContext[Any, Stored]) -> Stored:
        async def commit(tx: Any, enqueue_job: queuert.EnqueueJob[Stored]) -> Stored:
            return Stored(size=job.input.image_id * 10)

        return await ctx.finalize(commit)

    def upload() -> queuert.ChainHandle[Stored]:
        with backend.transaction() as conn:
            backend.insert_row(conn, "committed")
            return client.enqueue_job_chain(conn, image_chain, Upload(7))

    async with worker:
        handle = await asyncio.to_thread(upload)
        assert await app.wait_for_chain(handle, timeout=20) == Stored(size=70)
    assert "committed" in await asyncio.to_thread(backend.rows)


async def test_a_rollback_leaves_neither_the_row_nor_the_chain(backend: SyncBackend) -> None:
    app = make_app(backend)
    client = SyncClient(app)
    started: list[str] = []

    class Refused(Exception):
        pass

    def upload() -> None:
        with backend.transaction() as conn:
            backend.insert_row(conn, "rolled-back")
            started.append(client.enqueue_job_chain(conn, image_chain, Upload(1)).id)
            # The caller's transaction sees its own chain before it ends.
            assert client.get_chain(conn, started[0]) is not None
            raise Refused

    with pytest.raises(Refused):
        await asyncio.to_thread(upload)
    assert await app.get_chain(started[0]) is None
    assert "rolled-back" not in await asyncio.to_thread(backend.rows)


def _bad_calls() -> list[tuple[str, Any, dict[str, Any]]]:
    unregistered = queuert.ChainHandle("1" * 36, other_chain)
    now = datetime.now(UTC)
    return [
        ("unknown chain", (other_chain, Upload(1)), {}),
        ("input of another type", (image_chain, {"image_id": 1}), {}),
        ("not JSON-serialisable", (image_chain, Upload(object())), {}),  # type: ignore[arg-type]
        ("delay and start_at", (image_chain, Upload(1)), {"delay": timedelta(1), "start_at": now}),
        ("negative delay", (image_chain, Upload(1)), {"delay": timedelta(seconds=-1)}),
        ("naive start_at", (image_chain, Upload(1)), {"start_at": datetime(2030, 1, 1)}),
        ("priority out of range", (image_chain, Upload(1)), {"priority": 2**40}),
        ("unknown dedup scope", (image_chain, Upload(1)), {"dedup_key": "k", "dedup_scope": "all"}),
        ("empty dedup key", (image_chain, Upload(1)), {"dedup_key": ""}),
        ("blocker of another chain", (image_chain, Upload(1)), {"blockers": [unregistered]}),
        ("no blockers", (image_chain, Upload(1)), {"blockers": []}),
    ]


@pytest.mark.parametrize(
    ("case", "args", "options"), _bad_calls(), ids=lambda v: v if isinstance(v, str) else ""
)
async def test_bad_input_raises_the_async_error_and_writes_nothing(
    backend: SyncBackend, case: str, args: Any, options: dict[str, Any]
) -> None:
    app = make_app(backend)
    client = SyncClient(app)
    with pytest.raises(queuert.ValidationError) as async_error:
        await app.enqueue_job_chain(None, *args, **options)

    def enqueue() -> tuple[BaseException, bool]:
        with backend.transaction() as conn:
            with pytest.raises(queuert.ValidationError) as sync_error:
                client.enqueue_job_chain(conn, *args, **options)
            return sync_error.value, _sent_nothing(conn)

    error, untouched = await asyncio.to_thread(enqueue)
    assert type(error) is type(async_error.value)
    assert str(error) == str(async_error.value)
    assert untouched, f"{case}: a statement reached the connection"


def _sent_nothing(conn: Any) -> bool:
    """Whether no statement ran in the connection's transaction."""
    if isinstance(conn, psycopg.Connection):
        return conn.info.transaction_status is psycopg.pq.TransactionStatus.IDLE
    assert isinstance(conn, sqlite3.Connection)
    return not conn.in_transaction


async def test_connections_the_api_cannot_use_are_refused(
    backend: SyncBackend, tmp_path: Any
) -> None:
    app = make_app(backend)
    client = SyncClient(app)

    def refusals() -> list[type[BaseException]]:
        seen: list[type[BaseException]] = []

        def attempt(conn: object) -> None:
            try:
                client.enqueue_job_chain(conn, image_chain, Upload(1))
            except queuert.QueuertError as exc:
                seen.append(type(exc))

        attempt("not a connection")
        closed = backend.connect()
        closed.close()
        attempt(closed)
        if backend.path is not None:
            autocommit = sqlite3.connect(backend.path, isolation_level=None)
            attempt(autocommit)
            autocommit.close()
            other = sqlite3.connect(str(tmp_path / "other.db"))
            attempt(other)
            other.close()
        else:
            assert backend.url is not None
            with psycopg.connect(backend.url, autocommit=True) as pg_autocommit:
                attempt(pg_autocommit)
                attempt(sqlite3.connect(":memory:"))
            with psycopg.connect(backend.url) as failed:
                with contextlib.suppress(psycopg.errors.DivisionByZero):
                    failed.execute("SELECT 1 / 0")
                attempt(failed)
        return seen

    seen = await asyncio.to_thread(refusals)
    expected: list[type[BaseException]] = [
        queuert.InvalidTransactionError,
        queuert.TransactionClosedError,
        queuert.TransactionClosedError,
    ]
    if backend.path is not None:
        expected.append(queuert.ForeignTransactionError)
    else:
        expected += [queuert.InvalidTransactionError, queuert.TransactionClosedError]
    assert seen == expected


async def test_an_autocommit_psycopg_connection_inside_a_transaction_block_is_used(
    backend: SyncBackend,
) -> None:
    if backend.url is None:
        pytest.skip("psycopg only")
    app = make_app(backend)
    client = SyncClient(app)
    url = backend.url

    def upload() -> str:
        with psycopg.connect(url, autocommit=True) as conn:
            with conn.transaction():
                handle = client.enqueue_job_chain(conn, image_chain, Upload(3))
            return handle.id

    chain_id = await asyncio.to_thread(upload)
    assert await app.get_chain(chain_id) is not None


async def test_calls_on_the_event_loop_thread_are_refused(backend: SyncBackend) -> None:
    client = SyncClient(make_app(backend))
    conn = backend.connect()
    try:
        with pytest.raises(queuert.ValidationError, match="event loop"):
            client.enqueue_job_chain(conn, image_chain, Upload(1))
        assert _sent_nothing(conn)
    finally:
        conn.close()
