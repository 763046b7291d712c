"""Schema migrations and the errors a database without the schema gives."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from queuert.errors import SchemaNotMigratedError
from queuert.records import JobFilter
from queuert_sqlite import SCHEMA_VERSION, SqliteStateAdapter
from queuert_sqlite.migrations import MIGRATIONS
from tests.sqlite.helpers import new_job


async def test_check_schema_names_the_command_on_a_fresh_database(db_path: str) -> None:
    state = SqliteStateAdapter(db_path)
    try:
        with pytest.raises(SchemaNotMigratedError) as raised:
            await state.check_schema()
        assert f"await SqliteStateAdapter(path={db_path!r}).migrate()" in str(raised.value)
    finally:
        await state.close()


async def test_command_in_the_error_carries_a_custom_table_prefix(db_path: str) -> None:
    state = SqliteStateAdapter(db_path, table_prefix="jobs_")
    try:
        with pytest.raises(SchemaNotMigratedError, match="table_prefix='jobs_'"):
            await state.check_schema()
    finally:
        await state.close()


async def test_data_operations_on_a_fresh_database_raise_schema_not_migrated(
    db_path: str,
) -> None:
    state = SqliteStateAdapter(db_path)
    try:
        with pytest.raises(SchemaNotMigratedError, match=r"\.migrate\(\)"):
            await state.create_jobs(tx=None, jobs=[new_job()])
        with pytest.raises(SchemaNotMigratedError):
            await state.acquire_jobs(tx=None, queues=["q"], limit=1, owner="w", lease_ms=1000)
        with pytest.raises(SchemaNotMigratedError):
            await state.list_jobs(tx=None, filter=JobFilter(), after=None, limit=10)
        with pytest.raises(SchemaNotMigratedError):
            async with state.transaction() as tx:
                await state.create_jobs(tx=tx, jobs=[new_job()])
    finally:
        await state.close()


async def test_migrate_is_idempotent_and_records_the_version(db_path: str) -> None:
    state = SqliteStateAdapter(db_path)
    try:
        await state.migrate()
        await state.create_jobs(tx=None, jobs=[new_job()])
        await state.migrate()
        await state.check_schema()
        page = await state.list_jobs(tx=None, filter=JobFilter(), after=None, limit=10)
        assert len(page.items) == 1, "a second migrate must keep the data"
    finally:
        await state.close()
    with sqlite3.connect(db_path) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM queuert_migrations")]
    assert versions == [migration.version for migration in MIGRATIONS]


async def test_concurrent_migrations_from_several_adapters_all_succeed(db_path: str) -> None:
    states = [SqliteStateAdapter(db_path) for _ in range(4)]
    try:
        await asyncio.gather(*(state.migrate() for state in states))
        for state in states:
            await state.check_schema()
    finally:
        for state in states:
            await state.close()


async def test_table_prefixes_keep_schemas_apart_in_one_file(db_path: str) -> None:
    first = SqliteStateAdapter(db_path, table_prefix="a_")
    second = SqliteStateAdapter(db_path, table_prefix="b_")
    try:
        await first.migrate()
        with pytest.raises(SchemaNotMigratedError):
            await second.check_schema()
        await second.migrate()
        await first.create_jobs(tx=None, jobs=[new_job()])
        page = await second.list_jobs(tx=None, filter=JobFilter(), after=None, limit=10)
        assert page.items == []
    finally:
        await first.close()
        await second.close()


async def test_an_older_schema_is_reported_as_not_migrated(
    adapter: SqliteStateAdapter, db_path: str
) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute("DELETE FROM queuert_migrations WHERE version = ?", (SCHEMA_VERSION,))
    with pytest.raises(SchemaNotMigratedError, match=f"needs {SCHEMA_VERSION}"):
        await adapter.check_schema()


async def test_a_schema_missing_an_earlier_version_is_reported_as_not_migrated(
    adapter: SqliteStateAdapter, db_path: str
) -> None:
    # At the latest version but without an earlier one: versions are not assumed to
    # be contiguous, each one must be recorded.
    with sqlite3.connect(db_path) as conn:
        conn.execute("DELETE FROM queuert_migrations WHERE version = ?", (MIGRATIONS[0].version,))
    with pytest.raises(SchemaNotMigratedError, match="missing"):
        await adapter.check_schema()


async def test_a_newer_schema_asks_for_an_upgrade(
    adapter: SqliteStateAdapter, db_path: str
) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "INSERT INTO queuert_migrations (version, name, applied_at) VALUES (?, 'x', 0)",
            (SCHEMA_VERSION + 1,),
        )
    with pytest.raises(SchemaNotMigratedError, match="upgrade queuert-sqlite"):
        await adapter.check_schema()


async def test_version_3_upgrades_a_version_1_database_with_jobs(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import queuert_sqlite.schema_ops

    # Version 1 with the trace-context column (version 4) that the adapter writes.
    v1 = tuple(m for m in MIGRATIONS if m.version in (1, 4))
    monkeypatch.setattr(queuert_sqlite.schema_ops, "MIGRATIONS", v1)
    old = SqliteStateAdapter(db_path)
    try:
        await old.migrate()
        (job,) = await old.create_jobs(tx=None, jobs=[new_job()])
    finally:
        await old.close()
    monkeypatch.undo()
    state = SqliteStateAdapter(db_path)
    try:
        with pytest.raises(SchemaNotMigratedError):
            await state.check_schema()
        await state.migrate()
        await state.check_schema()
        assert await state.get_job(tx=None, job_id=job.id) == job
        (waiter,) = await state.create_blocked_jobs(
            tx=None, jobs=[new_job()], blocker_chain_ids=[job.chain_id]
        )
        assert waiter.status.value == "blocked"
    finally:
        await state.close()
    with sqlite3.connect(db_path) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM queuert_migrations")]
    assert versions == [migration.version for migration in MIGRATIONS]


async def test_a_version_1_database_gains_the_trace_context_column(db_path: str) -> None:
    first = MIGRATIONS[0]
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "CREATE TABLE queuert_migrations (version INTEGER PRIMARY KEY NOT NULL, "
            "name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
        )
        for statement in first.render("queuert_"):
            conn.execute(statement)
        conn.execute("INSERT INTO queuert_migrations VALUES (1, 'create jobs', 0)")
    state = SqliteStateAdapter(db_path)
    try:
        with pytest.raises(SchemaNotMigratedError):
            await state.check_schema()
        await state.migrate()
        await state.check_schema()
        await state.create_jobs(tx=None, jobs=[new_job(), new_job(trace_context='{"k":"v"}')])
        page = await state.list_jobs(tx=None, filter=JobFilter(), after=None, limit=10)
        assert sorted(str(job.trace_context) for job in page.items) == ["None", '{"k":"v"}']
    finally:
        await state.close()


async def test_a_missing_lower_version_is_reported_as_not_migrated(
    adapter: SqliteStateAdapter, db_path: str
) -> None:
    # Versions may have gaps, so the highest one recorded does not prove the others.
    with sqlite3.connect(db_path) as conn:
        conn.execute("DELETE FROM queuert_migrations WHERE version = 1")
    with pytest.raises(SchemaNotMigratedError, match=f"needs {SCHEMA_VERSION}"):
        await adapter.check_schema()


async def test_version_9_marks_the_jobs_created_with_blockers(db_path: str) -> None:
    state = SqliteStateAdapter(db_path)
    try:
        await state.migrate()
        (blocker,) = await state.create_jobs(tx=None, jobs=[new_job()])
        (waiter,) = await state.create_blocked_jobs(
            tx=None, jobs=[new_job()], blocker_chain_ids=[blocker.chain_id]
        )
    finally:
        await state.close()
    # The database as it was before version 8: no flag on any job.
    with sqlite3.connect(db_path) as conn:
        conn.execute("ALTER TABLE queuert_jobs DROP COLUMN has_blockers")
        conn.execute("DELETE FROM queuert_migrations WHERE version = 8")
    state = SqliteStateAdapter(db_path)
    try:
        await state.migrate()
        flags = {
            job.id: job.has_blockers
            for job in (
                await state.list_jobs(tx=None, filter=JobFilter(), after=None, limit=10)
            ).items
        }
        assert flags == {blocker.id: False, waiter.id: True}
    finally:
        await state.close()
