"""A chain in code: the README's example, run by the tests.

python -m examples.chain_in_code
"""

from __future__ import annotations

import asyncio
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

import queuert
from queuert_sqlite import SqliteStateAdapter

Tx = aiosqlite.Connection


@dataclass
class ImageInput:
    image_id: int


@dataclass
class DistributeInput:
    image_id: int
    minified_id: int


@dataclass
class Done:
    url: str


image_chain = queuert.chain("process-and-distribute-image", input=ImageInput, output=Done)
distribute = image_chain.queue("distribute", input=DistributeInput)


async def load_image(tx: Tx, image_id: int) -> bytes:
    async with tx.execute("SELECT pixels FROM images WHERE id = ?", (image_id,)) as cur:
        row = await cur.fetchone()
    assert row is not None
    return bytes(row[0])


async def main(path: Path) -> Done:
    state = SqliteStateAdapter(path)
    await state.migrate()
    app = queuert.Queuert(
        state=state, notify=queuert.InProcessNotifyAdapter(), chains=[image_chain]
    )
    async with state.connect() as conn:
        await conn.executescript(
            "CREATE TABLE images (id INTEGER PRIMARY KEY, pixels BLOB NOT NULL);"
            "CREATE TABLE minified (id INTEGER PRIMARY KEY, image_id INTEGER, data BLOB);"
            "CREATE TABLE distributions (image_id INTEGER, url TEXT);"
        )
        # Start a chain inside the application's own transaction.
        async with app.with_notify(), state.transaction(connection=conn) as tx:
            cur = await tx.execute("INSERT INTO images (pixels) VALUES (?)", (b"\x00" * 4096,))
            assert cur.lastrowid is not None
            handle = await app.enqueue_job_chain(tx, image_chain, ImageInput(cur.lastrowid))

    worker = app.worker(concurrency=10)

    @worker.handler(image_chain)
    async def process(
        job: queuert.Job[ImageInput], ctx: queuert.JobContext[Tx, Done]
    ) -> Done | queuert.Continuation:
        image = await ctx.claim(lambda tx: load_image(tx, job.input.image_id))  # lease verified
        await ctx.heartbeat(lease_ms=60_000)
        small = await asyncio.to_thread(zlib.compress, image, 9)  # no transaction

        async def commit(
            tx: Tx, enqueue_job: queuert.EnqueueJob[Done]
        ) -> Done | queuert.Continuation:  # one transaction: these writes and the next job
            cur = await tx.execute(
                "INSERT INTO minified (image_id, data) VALUES (?, ?)", (job.input.image_id, small)
            )
            assert cur.lastrowid is not None
            return await enqueue_job(distribute, DistributeInput(job.input.image_id, cur.lastrowid))

        return await ctx.finalize(commit)

    @worker.handler(distribute)
    async def upload(
        job: queuert.Job[DistributeInput], ctx: queuert.JobContext[Tx, Done]
    ) -> Done | queuert.Continuation:
        async def push_to_cdn() -> str:
            await asyncio.sleep(0.05)
            return f"https://cdn.example.com/{job.input.minified_id}.z"

        url = await ctx.with_heartbeat(push_to_cdn(), interval_ms=5_000)

        async def commit(tx: Tx, enqueue_job: queuert.EnqueueJob[Done]) -> Done:
            await tx.execute(
                "INSERT INTO distributions (image_id, url) VALUES (?, ?)", (job.input.image_id, url)
            )
            return Done(url=url)

        return await ctx.finalize(commit)

    try:
        async with worker:  # or: await worker.run()  (stops on SIGTERM/SIGINT)
            return await app.wait_for_chain(handle, timeout=60)
    finally:
        await app.close()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        print(asyncio.run(main(Path(folder) / "app.db")))
