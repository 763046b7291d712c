"""The image pipeline: queuert on SQLite with the application's own tables.

Run with ``hatch run demo``. Everything lives in one SQLite file: the
application's ``images``, ``minified_images`` and ``distributions`` tables and
queuert's jobs. Chains are started inside the application's own transactions
(one is rolled back on purpose and shown not to exist), a real worker runs
them with a live progress display, and the closing tables are read back
through the library.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

import queuert
from examples.display import Display
from queuert_sqlite import SqliteStateAdapter

display = Display()


@dataclass
class ImageInput:
    image_id: int


@dataclass
class DistributeInput:
    image_id: int
    minified_id: int


@dataclass
class Done:
    done: bool


image_chain = queuert.chain("process-and-distribute-image", input=ImageInput, output=Done)
distribute = image_chain.queue("distribute", input=DistributeInput)

APP_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, pixels BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS minified_images (
    id INTEGER PRIMARY KEY, image_id INTEGER NOT NULL, data BLOB NOT NULL, digest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS distributions (
    id INTEGER PRIMARY KEY, image_id INTEGER NOT NULL, minified_id INTEGER NOT NULL,
    url TEXT NOT NULL
);
"""


def minify(pixels: bytes) -> bytes:
    """CPU-bound work, run off the event loop so heartbeats keep flowing."""
    data = pixels
    for _ in range(3):
        data = zlib.compress(data, 9)
    return data


def register_handlers(worker: queuert.Worker[aiosqlite.Connection], count: int) -> None:
    minified = display.counter("minified", count)
    distributed = display.counter("distributed", count)

    @worker.handler(image_chain)
    async def process(
        job: queuert.Job[ImageInput], ctx: queuert.JobContext[aiosqlite.Connection, Done]
    ) -> Done | queuert.Continuation:
        async def load(tx: aiosqlite.Connection) -> bytes:
            async with tx.execute(
                "SELECT pixels FROM images WHERE id = ?", (job.input.image_id,)
            ) as cur:
                row = await cur.fetchone()
            assert row is not None, f"image {job.input.image_id} is missing"
            return bytes(row[0])

        pixels = await ctx.claim(load)
        await ctx.heartbeat(lease_ms=60_000)
        small = await asyncio.to_thread(minify, pixels)

        async def commit(
            tx: aiosqlite.Connection, enqueue_job: queuert.EnqueueJob[Done]
        ) -> Done | queuert.Continuation:
            cur = await tx.execute(
                "INSERT INTO minified_images (image_id, data, digest) VALUES (?, ?, ?)",
                (job.input.image_id, small, hashlib.sha256(small).hexdigest()),
            )
            assert cur.lastrowid is not None
            return await enqueue_job(distribute, DistributeInput(job.input.image_id, cur.lastrowid))

        result = await ctx.finalize(commit)
        minified()
        return result

    @worker.handler(distribute)
    async def upload(
        job: queuert.Job[DistributeInput], ctx: queuert.JobContext[aiosqlite.Connection, Done]
    ) -> Done | queuert.Continuation:
        async def slow_upload() -> str:
            await asyncio.sleep(random.uniform(0.3, 0.8))
            return f"https://cdn.example.com/images/{job.input.image_id}.z"

        url = await ctx.with_heartbeat(slow_upload(), interval_ms=200, lease_ms=2_000)

        async def commit(
            tx: aiosqlite.Connection, enqueue_job: queuert.EnqueueJob[Done]
        ) -> Done | queuert.Continuation:
            await tx.execute(
                "INSERT INTO distributions (image_id, minified_id, url) VALUES (?, ?, ?)",
                (job.input.image_id, job.input.minified_id, url),
            )
            return Done(done=True)

        result = await ctx.finalize(commit)
        distributed()
        return result


async def start_chains(
    app: queuert.Queuert[aiosqlite.Connection], state: SqliteStateAdapter, count: int
) -> tuple[list[queuert.ChainHandle[Done]], str]:
    """Insert images and start their chains in the application's own transactions."""
    handles = []
    async with state.connect() as conn:
        for n in range(count):
            async with app.with_notify(), state.transaction(connection=conn) as tx:
                cur = await tx.execute(
                    "INSERT INTO images (name, pixels) VALUES (?, ?)",
                    (f"photo-{n}.raw", random.randbytes(64_000)),
                )
                assert cur.lastrowid is not None
                handles.append(
                    await app.enqueue_job_chain(tx, image_chain, ImageInput(cur.lastrowid))
                )

        # An upload that is rejected after its chain was started: the rollback takes
        # the image row and the chain with it, and no worker is woken.
        class Rejected(Exception):
            pass

        doomed: list[queuert.ChainHandle[Done]] = []
        try:
            async with app.with_notify(), state.transaction(connection=conn) as tx:
                cur = await tx.execute(
                    "INSERT INTO images (name, pixels) VALUES (?, ?)", ("rejected.raw", b"\0" * 10)
                )
                doomed.append(
                    await app.enqueue_job_chain(tx, image_chain, ImageInput(cur.lastrowid or 0))
                )
                raise Rejected
        except Rejected:
            pass
    return handles, doomed[0].id


def short(record_id: str) -> str:
    """The random tail of an id: UUIDv7 heads are timestamps and look alike."""
    return "…" + record_id[-6:]


def show_summary(chains: list[queuert.ChainRecord], jobs: list[queuert.JobRecord]) -> None:
    display.table(
        "chains (app.list_chains)",
        ("chain", "status", "current queue", "output"),
        [(short(c.id), c.status.value, c.last_queue, c.output or "") for c in chains],
    )
    rows = []
    for j in jobs:
        ended = f"continued → {short(j.next_job_id)}" if j.next_job_id else (j.output or "")
        rows.append(
            (
                short(j.id),
                short(j.chain_id),
                j.queue,
                j.status.value,
                str(j.attempt),
                ended,
            )
        )
    display.table(
        "jobs (app.list_jobs)", ("job", "chain", "queue", "status", "attempt", "ended with"), rows
    )


async def main(count: int, database: Path) -> None:
    state = SqliteStateAdapter(database)
    await state.migrate()
    async with state.connect() as conn:
        await conn.executescript(APP_SCHEMA)
    app = queuert.Queuert(
        state=state, notify=queuert.InProcessNotifyAdapter(), chains=[image_chain]
    )
    display.print(f"[bold]queuert demo[/] — SQLite file {database}")

    worker = app.worker(concurrency=8, poll_interval=0.5)
    register_handlers(worker, count)
    with display.live():
        async with worker:
            handles, rolled_back_id = await start_chains(app, state, count)
            outputs = await asyncio.gather(*(app.wait_for_chain(h, timeout=50) for h in handles))

    assert all(o.done for o in outputs)
    missing = await app.get_chain(rolled_back_id)
    display.print(
        f"chain {short(rolled_back_id)} was started in a transaction that rolled back; "
        f"it exists: [bold]{missing is not None}[/]"
    )
    show_summary((await app.list_chains(limit=1000)).items, (await app.list_jobs(limit=1000)).items)
    async with state.connect() as conn, conn.execute("SELECT count(*) FROM distributions") as cur:
        row = await cur.fetchone()
    display.print(f"application rows in distributions: {row[0] if row else 0} (one per chain)")
    await app.close()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chains", type=int, default=12, help="how many images to process")
    parser.add_argument("--database", type=Path, default=None, help="SQLite file (default: temp)")
    args = parser.parse_args()
    if args.database is not None:
        asyncio.run(main(args.chains, args.database))
        return
    with tempfile.TemporaryDirectory(prefix="queuert-demo-") as tmp:
        asyncio.run(main(args.chains, Path(tmp) / "demo.db"))


if __name__ == "__main__":
    cli()
