"""A first chain in five minutes: ``python -m examples.first_chain``.

One SQLite file holds the application's table and queuert's jobs. A greeting
chain is started in the application's own transaction, a worker runs its two
steps, and the chain's output is read back.
"""

from __future__ import annotations

# --8<-- [start:define]
import asyncio
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

import queuert
from queuert_sqlite import SqliteStateAdapter


@dataclass
class Signup:
    user_id: int


@dataclass
class Welcome:
    user_id: int
    text: str


@dataclass
class Sent:
    message: str


# A chain named "welcome" (its entry queue) with one more step, "welcome:send".
welcome = queuert.chain("welcome", input=Signup, output=Sent)
send = welcome.queue("send", input=Welcome)
# --8<-- [end:define]


# --8<-- [start:handlers]
def register(worker: queuert.Worker[aiosqlite.Connection]) -> None:
    @worker.handler(welcome)
    async def compose(
        job: queuert.Job[Signup], ctx: queuert.JobContext[aiosqlite.Connection, Sent]
    ) -> queuert.Continuation:
        # claim: read what the job needs, in a transaction that checks the lease.
        async def load(tx: aiosqlite.Connection) -> str:
            rows = await tx.execute_fetchall(
                "SELECT name FROM users WHERE id = ?", (job.input.user_id,)
            )
            return str(next(iter(rows))[0])

        name = await ctx.claim(load)
        text = f"Welcome, {name}!"  # process: the long work, outside any transaction

        # finalize: the job completes by continuing its chain, in one transaction.
        async def commit(
            tx: aiosqlite.Connection, enqueue_job: queuert.EnqueueJob[Sent]
        ) -> queuert.Continuation:
            return await enqueue_job(send, Welcome(job.input.user_id, text))

        return await ctx.finalize(commit)

    @worker.handler(send)
    async def deliver(
        job: queuert.Job[Welcome], ctx: queuert.JobContext[aiosqlite.Connection, Sent]
    ) -> Sent:
        async def commit(tx: aiosqlite.Connection, enqueue_job: queuert.EnqueueJob[Sent]) -> Sent:
            await tx.execute("UPDATE users SET welcomed = 1 WHERE id = ?", (job.input.user_id,))
            return Sent(message=job.input.text)  # the chain's output

        return await ctx.finalize(commit)


# --8<-- [end:handlers]


async def main(database: Path) -> Sent:
    # --8<-- [start:run]
    state = SqliteStateAdapter(database)
    await state.migrate()  # queuert's tables, once per database
    app = queuert.Queuert(state=state, notify=queuert.InProcessNotifyAdapter(), chains=[welcome])
    try:
        async with state.connect() as conn:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS users "
                "(id INTEGER PRIMARY KEY, name TEXT, welcomed INTEGER DEFAULT 0)"
            )
            # The user's row and the chain commit together, or neither does.
            async with app.with_notify(), state.transaction(connection=conn) as tx:
                cursor = await tx.execute("INSERT INTO users (name) VALUES (?)", ("Ada",))
                assert cursor.lastrowid is not None
                handle = await app.enqueue_job_chain(tx, welcome, Signup(cursor.lastrowid))
        print("started chain", handle.id)

        worker = app.worker(concurrency=2)
        register(worker)
        async with worker:  # runs until the block ends
            sent = await app.wait_for_chain(handle, timeout=30)
        print(sent.message)
        return sent
    finally:
        await app.close()
    # --8<-- [end:run]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(folder) / "app.db"))
