"""The deduplication and delayed-continuation example runs on SQLite: a second
start with the same dedup key returns the first chain, and the delayed step is
scheduled that much after the step that continued to it."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import queuert
from examples.dedup_and_delay import Imported, import_chain, run
from queuert_sqlite import SqliteStateAdapter


async def test_a_second_start_with_the_same_key_returns_the_first_chain(tmp_path: Path) -> None:
    database = tmp_path / "dedup.db"
    outcome = await run(database, timedelta(milliseconds=300))
    assert outcome.first.deduplicated is False
    assert outcome.second.deduplicated is True
    assert outcome.second.id == outcome.first.id
    assert outcome.output == Imported(7)
    # One chain and one application row: the deduplicated start wrote neither.
    with sqlite3.connect(database) as conn:
        rows = list(conn.execute("SELECT file_id, chain_id FROM imports"))
    assert rows == [(7, outcome.first.id)]
    app = queuert.Queuert(state=SqliteStateAdapter(database), chains=[import_chain])
    try:
        chains = (await app.list_chains(chain=import_chain)).items
    finally:
        await app.close()
    assert [c.id for c in chains] == [outcome.first.id]
    assert chains[0].dedup_key == "file-7"


async def test_the_delayed_continuation_is_scheduled_after_the_delay(tmp_path: Path) -> None:
    delay = timedelta(milliseconds=300)
    outcome = await run(tmp_path / "dedup.db", delay)
    import_job, reminder_job = outcome.import_job, outcome.reminder_job
    assert reminder_job.queue == "import-file:remind"
    assert import_job.completed_at is not None
    # Stored times have millisecond precision.
    assert reminder_job.scheduled_at >= import_job.completed_at + delay - timedelta(milliseconds=5)
    assert reminder_job.scheduled_at > reminder_job.created_at
