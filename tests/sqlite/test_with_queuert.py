"""The adapter under a queuert application and worker: the application's rows and
the chain's progress share one SQLite file and one transaction."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

import queuert
from queuert_sqlite import SqliteStateAdapter


@dataclass
class Upload:
    name: str


@dataclass
class Stored:
    row_id: int


uploads = queuert.chain("store-upload", input=Upload, output=Stored)


async def test_a_chain_enqueued_and_finalized_in_the_applications_transactions(
    adapter: SqliteStateAdapter,
) -> None:
    app = queuert.Queuert(state=adapter, chains=[uploads])
    async with adapter.connect() as conn:
        await conn.execute("CREATE TABLE files (id INTEGER PRIMARY KEY, name TEXT)")
        async with adapter.transaction(connection=conn) as tx:
            handle = await app.enqueue_job_chain(tx, uploads, Upload(name="cat.png"))
        async with adapter.transaction(connection=conn) as tx:
            rolled_back = await app.enqueue_job_chain(tx, uploads, Upload(name="dog.png"))
            await tx.rollback()  # the application changes its mind: no job either

    worker = app.worker(concurrency=2, poll_interval=0.05)

    @worker.handler(uploads)
    async def store(
        job: queuert.Job[Upload], ctx: queuert.JobContext[aiosqlite.Connection, Stored]
    ) -> Stored | queuert.Continuation:
        async def commit(
            tx: aiosqlite.Connection, enqueue_job: queuert.EnqueueJob[Stored]
        ) -> Stored:
            cursor = await tx.execute("INSERT INTO files (name) VALUES (?)", (job.input.name,))
            assert cursor.lastrowid is not None
            return Stored(row_id=cursor.lastrowid)

        return await ctx.finalize(commit)

    async with worker:
        stored = await app.wait_for_chain(handle, timeout=10, poll_interval=0.02)

    async with adapter.connect() as conn:
        rows = list(await conn.execute_fetchall("SELECT id, name FROM files"))
    assert rows == [(stored.row_id, "cat.png")]
    assert await app.get_chain(rolled_back.id) is None
