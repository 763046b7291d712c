"""Fan-out and fan-in: each uploaded image is resized to three sizes in parallel,
then published once all three renditions exist.

Run with ``python -m examples.image_fan_in``. Everything lives in one SQLite file:
the application's ``images``, ``renditions`` and ``publications`` tables and
queuert's jobs.

- ``process-image`` (the chain's entry step) reads the image and, in its
  finalize transaction, starts one ``resize-image`` chain per size and continues
  with its ``publish`` step blocked on those three chains. The three chains and
  the blocked step commit together with the finalize, or none of them does.
- Each ``resize-image`` chain writes its rendition and ends with its output.
- ``publish`` becomes pending in the transaction that completes the last of the
  three, reads their outputs (typed as the ``resize-image`` chain's output), takes
  the first (the smallest size) as the thumbnail and writes the publication.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

import queuert
from queuert_sqlite import SqliteStateAdapter

SIZES = (128, 512, 2048)


@dataclass
class ImageInput:
    image_id: int


@dataclass
class ResizeInput:
    image_id: int
    size: int


@dataclass
class Rendition:
    size: int
    rendition_id: int
    byte_count: int


@dataclass
class PublishInput:
    image_id: int


@dataclass
class Published:
    image_id: int
    rendition_ids: list[int]
    thumbnail_id: int


image_chain = queuert.chain("process-image", input=ImageInput, output=Published)
# --8<-- [start:publish-queue]
# Its jobs wait on the three resizes: the worker reads their renditions into
# job.blockers before the handler runs.
publish = image_chain.queue("publish", input=PublishInput)
# --8<-- [end:publish-queue]
resize_chain = queuert.chain("resize-image", input=ResizeInput, output=Rendition)

APP_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (id INTEGER PRIMARY KEY, pixels BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS renditions (
    id INTEGER PRIMARY KEY, image_id INTEGER NOT NULL, size INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS publications (
    image_id INTEGER PRIMARY KEY, renditions TEXT NOT NULL
);
"""


def resize(pixels: bytes, size: int) -> bytes:
    """Stand-in for real resizing: CPU-bound work, run off the event loop."""
    return zlib.compress(pixels[: size * 16], 6)


def register_handlers(
    app: queuert.Queuert[aiosqlite.Connection], worker: queuert.Worker[aiosqlite.Connection]
) -> None:
    @worker.handler(image_chain)
    async def fan_out(
        job: queuert.Job[ImageInput], ctx: queuert.JobContext[aiosqlite.Connection, Published]
    ) -> Published | queuert.Continuation:
        # --8<-- [start:fan-out]
        async def commit(
            tx: aiosqlite.Connection, enqueue_job: queuert.EnqueueJob[Published]
        ) -> queuert.Continuation:
            # Started in the finalize's transaction: they exist exactly when it commits.
            resizes = [
                await app.enqueue_job_chain(tx, resize_chain, ResizeInput(job.input.image_id, s))
                for s in SIZES
            ]
            return await enqueue_job(publish, PublishInput(job.input.image_id), blockers=resizes)

        return await ctx.finalize(commit)
        # --8<-- [end:fan-out]

    @worker.handler(resize_chain)
    async def make_rendition(
        job: queuert.Job[ResizeInput], ctx: queuert.JobContext[aiosqlite.Connection, Rendition]
    ) -> Rendition | queuert.Continuation:
        async def load(tx: aiosqlite.Connection) -> bytes:
            async with tx.execute(
                "SELECT pixels FROM images WHERE id = ?", (job.input.image_id,)
            ) as cur:
                row = await cur.fetchone()
            assert row is not None, f"image {job.input.image_id} is missing"
            return bytes(row[0])

        pixels = await ctx.claim(load)
        data = await asyncio.to_thread(resize, pixels, job.input.size)

        async def commit(
            tx: aiosqlite.Connection, enqueue_job: queuert.EnqueueJob[Rendition]
        ) -> Rendition:
            cur = await tx.execute(
                "INSERT INTO renditions (image_id, size, data) VALUES (?, ?, ?)",
                (job.input.image_id, job.input.size, data),
            )
            assert cur.lastrowid is not None
            return Rendition(job.input.size, cur.lastrowid, len(data))

        return await ctx.finalize(commit)

    @worker.handler(publish)
    async def fan_in(
        job: queuert.Job[PublishInput], ctx: queuert.JobContext[aiosqlite.Connection, Published]
    ) -> Published | queuert.Continuation:
        # --8<-- [start:read-blockers]
        renditions = job.blockers.outputs(resize_chain)  # list[Rendition], in the order given
        thumbnail = job.blockers[0].output(resize_chain)  # one blocker, by position: SIZES[0]
        # --8<-- [end:read-blockers]
        ids = [r.rendition_id for r in renditions]

        async def commit(
            tx: aiosqlite.Connection, enqueue_job: queuert.EnqueueJob[Published]
        ) -> Published:
            await tx.execute(
                "INSERT INTO publications (image_id, renditions) VALUES (?, ?)",
                (job.input.image_id, ",".join(map(str, ids))),
            )
            return Published(job.input.image_id, ids, thumbnail.rendition_id)

        return await ctx.finalize(commit)


async def run(count: int, database: Path) -> list[Published]:
    """Upload ``count`` images, process them, and return what was published."""
    state = SqliteStateAdapter(database)
    await state.migrate()
    async with state.connect() as conn:
        await conn.executescript(APP_SCHEMA)
    app = queuert.Queuert(
        state=state,
        notify=queuert.InProcessNotifyAdapter(),
        chains=[image_chain, resize_chain],
    )
    worker = app.worker(concurrency=6, poll_interval=0.2)
    register_handlers(app, worker)
    handles = []
    try:
        async with worker, state.connect() as conn:
            for _ in range(count):
                async with app.with_notify(), state.transaction(connection=conn) as tx:
                    cur = await tx.execute(
                        "INSERT INTO images (pixels) VALUES (?)", (random.randbytes(64_000),)
                    )
                    assert cur.lastrowid is not None
                    handles.append(
                        await app.enqueue_job_chain(tx, image_chain, ImageInput(cur.lastrowid))
                    )
            return list(await asyncio.gather(*(app.wait_for_chain(h, timeout=60) for h in handles)))
    finally:
        await app.close()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--images", type=int, default=5, help="how many images to process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="queuert-fan-in-") as tmp:
        published = asyncio.run(run(args.images, Path(tmp) / "fan-in.db"))
    for p in published:
        print(f"image {p.image_id}: published with renditions {p.rendition_ids}")


if __name__ == "__main__":
    cli()
