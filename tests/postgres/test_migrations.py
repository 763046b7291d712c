"""Schema migrations and schema checks of the PostgreSQL state adapter."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from queuert.errors import SchemaNotMigratedError
from queuert_postgres import SCHEMA_VERSION, PostgresStateAdapter
from queuert_postgres.limits import acquire_function_steps
from queuert_postgres.migrations import MIGRATIONS
from queuert_postgres.names import Names
from tests.postgres.helpers import new_job


async def tables(pool: asyncpg.Pool[asyncpg.Record], schema: str) -> set[str]:
    rows = await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
    return {row[0] for row in rows}


async def test_migrate_creates_the_schema_from_nothing(
    pool: asyncpg.Pool[asyncpg.Record], schema: str
) -> None:
    adapter = PostgresStateAdapter(pool, schema=schema)
    await adapter.migrate()

    assert await tables(pool, schema) == {
        "jobs",
        "job_blockers",
        "job_dedup",
        "migrations",
        "rate_starts",
        "schedule_slots",
        "workers",
    }
    versions = await pool.fetch(f'SELECT version FROM "{schema}".migrations ORDER BY version')
    assert [row[0] for row in versions] == [m.version for m in MIGRATIONS]
    await adapter.check_schema()


async def test_migrate_again_changes_nothing(adapter: PostgresStateAdapter) -> None:
    pool = adapter.pool
    (created,) = await adapter.create_jobs(tx=None, jobs=[new_job()])
    before = await pool.fetch(f'SELECT * FROM "{adapter.schema}".migrations ORDER BY version')

    await adapter.migrate()

    after = await pool.fetch(f'SELECT * FROM "{adapter.schema}".migrations ORDER BY version')
    assert after == before
    assert await adapter.get_job(tx=None, job_id=created.id) is not None


async def test_concurrent_migrations_both_succeed(postgres_url: str, schema: str) -> None:
    # Separate pools: the way two processes starting at once would migrate.
    first = await PostgresStateAdapter.connect(postgres_url, schema=schema)
    second = await PostgresStateAdapter.connect(postgres_url, schema=schema)
    try:
        await asyncio.gather(first.migrate(), second.migrate(), first.migrate())
        await first.check_schema()
        await second.check_schema()
        count = await first.pool.fetchval(f'SELECT count(*) FROM "{schema}".migrations')
        assert count == len(MIGRATIONS)
    finally:
        await first.close()
        await second.close()


async def test_check_schema_names_the_schema_and_the_command(
    pool: asyncpg.Pool[asyncpg.Record], schema: str
) -> None:
    adapter = PostgresStateAdapter(pool, schema=schema)

    with pytest.raises(SchemaNotMigratedError) as caught:
        await adapter.check_schema()

    message = str(caught.value)
    assert schema in message
    assert "migrate()" in message


async def test_check_schema_rejects_an_older_schema(adapter: PostgresStateAdapter) -> None:
    await adapter.pool.execute(
        f'DELETE FROM "{adapter.schema}".migrations WHERE version = $1', SCHEMA_VERSION
    )

    with pytest.raises(SchemaNotMigratedError, match="migrate"):
        await adapter.check_schema()


async def test_operations_on_a_missing_schema_ask_for_a_migration(
    pool: asyncpg.Pool[asyncpg.Record], schema: str
) -> None:
    adapter = PostgresStateAdapter(pool, schema=schema)

    with pytest.raises(SchemaNotMigratedError, match=schema):
        await adapter.create_jobs(tx=None, jobs=[new_job()])
    with pytest.raises(SchemaNotMigratedError):
        await adapter.acquire_jobs(tx=None, queues=["q"], limit=1, owner="w", lease_ms=1000)


async def test_table_prefixes_keep_deployments_apart(
    pool: asyncpg.Pool[asyncpg.Record], schema: str
) -> None:
    blue = PostgresStateAdapter(pool, schema=schema, table_prefix="blue_")
    green = PostgresStateAdapter(pool, schema=schema, table_prefix="green_")
    await blue.migrate()
    await green.migrate()
    (job,) = await blue.create_jobs(tx=None, jobs=[new_job()])

    assert await blue.get_job(tx=None, job_id=job.id) is not None
    assert await green.get_job(tx=None, job_id=job.id) is None
    assert await tables(pool, schema) == {
        "blue_jobs",
        "blue_job_blockers",
        "blue_job_dedup",
        "blue_migrations",
        "blue_workers",
        "blue_schedule_slots",
        "blue_rate_starts",
        "green_jobs",
        "green_job_blockers",
        "green_job_dedup",
        "green_migrations",
        "green_workers",
        "green_schedule_slots",
        "green_rate_starts",
    }


async def test_version_3_upgrades_a_version_1_schema_with_jobs(
    pool: asyncpg.Pool[asyncpg.Record], schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import queuert_postgres.migrations

    adapter = PostgresStateAdapter(pool, schema=schema)
    # Version 1 with the trace-context column (version 4) that the adapter writes.
    v1 = tuple(m for m in MIGRATIONS if m.version in (1, 4))
    monkeypatch.setattr(queuert_postgres.migrations, "MIGRATIONS", v1)
    await adapter.migrate()
    (job,) = await adapter.create_jobs(tx=None, jobs=[new_job()])
    monkeypatch.undo()
    with pytest.raises(SchemaNotMigratedError):
        await adapter.check_schema()
    await adapter.migrate()
    await adapter.check_schema()
    assert await adapter.get_job(tx=None, job_id=job.id) == job
    (waiter,) = await adapter.create_blocked_jobs(
        tx=None, jobs=[new_job()], blocker_chain_ids=[job.chain_id]
    )
    assert waiter.status.value == "blocked"


async def test_a_version_1_schema_gains_the_trace_context_column(
    pool: asyncpg.Pool[asyncpg.Record], schema: str
) -> None:
    adapter = PostgresStateAdapter(pool, schema=schema)
    await adapter.migrate()
    (old,) = await adapter.create_jobs(tx=None, jobs=[new_job()])
    # Back to how the schema was before version 4.
    await pool.execute(f'ALTER TABLE "{schema}".jobs DROP COLUMN trace_context')
    await pool.execute(f'DELETE FROM "{schema}".migrations WHERE version = 4')
    with pytest.raises(SchemaNotMigratedError):
        await adapter.check_schema()
    await adapter.migrate()
    await adapter.check_schema()
    stored = await adapter.get_job(tx=None, job_id=old.id)
    assert stored is not None and stored.trace_context is None


async def test_version_8_marks_the_jobs_created_with_blockers(
    adapter: PostgresStateAdapter,
) -> None:
    (blocker,) = await adapter.create_jobs(tx=None, jobs=[new_job()])
    (waiter,) = await adapter.create_blocked_jobs(
        tx=None, jobs=[new_job()], blocker_chain_ids=[blocker.chain_id]
    )
    # The schema as it was before version 8: no flag on any job.
    schema = adapter.schema
    await adapter.pool.execute(f'ALTER TABLE "{schema}".jobs DROP COLUMN has_blockers')
    await adapter.pool.execute(f'DELETE FROM "{schema}".migrations WHERE version = 8')
    await adapter.migrate()
    for job, flagged in ((blocker, False), (waiter, True)):
        read = await adapter.get_job(tx=None, job_id=job.id)
        assert read is not None and read.has_blockers is flagged


async def test_version_9_replaces_the_acquisition_function_of_a_version_8_schema(
    adapter: PostgresStateAdapter,
) -> None:
    # The schema as it was before version 9: version 7's acquisition function.
    schema = adapter.schema
    names = Names.create(schema, "")
    await adapter.pool.execute(f"DROP FUNCTION {names.table('acquire_limited_jobs')}")
    await adapter.pool.execute(acquire_function_steps(names)[1])
    await adapter.pool.execute(f'DELETE FROM "{schema}".migrations WHERE version = 9')
    with pytest.raises(SchemaNotMigratedError):
        await adapter.check_schema()
    await adapter.migrate()
    source = await adapter.pool.fetchval(
        "SELECT p.prosrc FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace "
        "WHERE n.nspname = $1 AND p.proname = 'acquire_limited_jobs'",
        schema,
    )
    assert "WITH RECURSIVE keys" in source, "the key walk of version 9 is not installed"
    await adapter.check_schema()
