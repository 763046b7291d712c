"""Deduplication and a delayed continuation: ``python -m examples.dedup_and_delay``.

One SQLite file holds the application's ``imports`` table and queuert's jobs.

- A file is imported by an ``import-file`` chain started with the dedup key
  ``file-<id>``. Asking twice for the same file (a double click) while the first
  chain has not ended starts no second chain: the second start returns the first
  chain's handle, with ``deduplicated`` set, and its transaction writes nothing
  of queuert's.
- The import step continues its chain with a ``remind`` step delayed by
  ``reminder_delay``: the next job is created with the import's end but becomes
  eligible only that much later.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiosqlite

import queuert
from queuert_sqlite import SqliteStateAdapter


@dataclass
class ImportInput:
    file_id: int


@dataclass
class ReminderInput:
    file_id: int


@dataclass
class Imported:
    file_id: int


import_chain = queuert.chain("import-file", input=ImportInput, output=Imported)
remind = import_chain.queue("remind", input=ReminderInput)

APP_SCHEMA = """
CREATE TABLE IF NOT EXISTS imports (
    id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL, chain_id TEXT NOT NULL
);
"""


async def request_import(
    app: queuert.Queuert[aiosqlite.Connection], tx: aiosqlite.Connection, file_id: int
) -> queuert.ChainHandle[Imported]:
    """Start importing ``file_id`` in the caller's transaction ``tx``, once per file
    while an import of it has not ended."""
    # --8<-- [start:dedup]
    handle = await app.enqueue_job_chain(
        tx, import_chain, ImportInput(file_id), dedup_key=f"file-{file_id}"
    )
    if handle.deduplicated:
        return handle  # an existing chain holds the key; handle is that chain's
    # --8<-- [end:dedup]
    await tx.execute("INSERT INTO imports (file_id, chain_id) VALUES (?, ?)", (file_id, handle.id))
    return handle


def register_handlers(
    worker: queuert.Worker[aiosqlite.Connection], reminder_delay: timedelta
) -> None:
    @worker.handler(import_chain)
    async def import_file(
        job: queuert.Job[ImportInput], ctx: queuert.JobContext[aiosqlite.Connection, Imported]
    ) -> queuert.Continuation:
        async def commit(
            tx: aiosqlite.Connection, enqueue_job: queuert.EnqueueJob[Imported]
        ) -> queuert.Continuation:
            # --8<-- [start:delay]
            return await enqueue_job(remind, ReminderInput(job.input.file_id), delay=reminder_delay)
            # --8<-- [end:delay]

        return await ctx.finalize(commit)

    @worker.handler(remind)
    async def send_reminder(
        job: queuert.Job[ReminderInput], ctx: queuert.JobContext[aiosqlite.Connection, Imported]
    ) -> Imported:
        async def commit(
            tx: aiosqlite.Connection, enqueue_job: queuert.EnqueueJob[Imported]
        ) -> Imported:
            return Imported(job.input.file_id)

        return await ctx.finalize(commit)


@dataclass
class Outcome:
    first: queuert.ChainHandle[Imported]
    second: queuert.ChainHandle[Imported]
    output: Imported
    import_job: queuert.JobRecord
    reminder_job: queuert.JobRecord


async def run(database: Path, reminder_delay: timedelta) -> Outcome:
    """Ask twice to import one file, run the chain to its end and return both
    handles, the output and the two jobs as stored."""
    state = SqliteStateAdapter(database)
    await state.migrate()
    app = queuert.Queuert(
        state=state, notify=queuert.InProcessNotifyAdapter(), chains=[import_chain]
    )
    try:
        async with state.connect() as conn:
            await conn.executescript(APP_SCHEMA)
            async with app.with_notify(), state.transaction(connection=conn) as tx:
                first = await request_import(app, tx, 7)
            async with app.with_notify(), state.transaction(connection=conn) as tx:
                second = await request_import(app, tx, 7)
        worker = app.worker(concurrency=2)
        register_handlers(worker, reminder_delay)
        async with worker:
            output = await app.wait_for_chain(first, timeout=30 + reminder_delay.total_seconds())
        import_job = await app.get_job(first.id)
        assert import_job is not None and import_job.next_job_id is not None
        reminder_job = await app.get_job(import_job.next_job_id)
        assert reminder_job is not None
        return Outcome(first, second, output, import_job, reminder_job)
    finally:
        await app.close()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--delay", type=float, default=2.0, help="reminder delay in seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="queuert-dedup-") as tmp:
        outcome = asyncio.run(run(Path(tmp) / "dedup.db", timedelta(seconds=args.delay)))
    print(f"first start: chain {outcome.first.id}")
    print(f"second start: chain {outcome.second.id}, deduplicated={outcome.second.deduplicated}")
    print(
        f"import ended at {outcome.import_job.completed_at}; "
        f"reminder scheduled at {outcome.reminder_job.scheduled_at}"
    )


if __name__ == "__main__":
    cli()
