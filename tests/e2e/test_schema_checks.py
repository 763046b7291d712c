"""``check_schema`` (run when a worker starts) refuses a schema it cannot use beyond
one never migrated: one recorded at a newer version than the adapter knows, and
one whose tables are gone although its migrations are recorded. A stored value
that cannot be read back is a named error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest

import queuert
from queuert import Job, JobContext, SchemaDamagedError, SchemaNotMigratedError, SchemaTooNewError
from tests.e2e.backends import Backend, open_backend
from tests.e2e.fixtures_inprocess import make_worker

jobs = queuert.chain("schema-checks", input=int, output=int)


async def run_sql(backend: Backend, statement: str) -> None:
    """Run ``statement`` on the backend's store, in its queuert schema, with
    ``{prefix}`` replaced by the adapter's table prefix."""
    statement = statement.format(prefix=getattr(backend.state, "table_prefix", ""))
    if backend.name == "sqlite":
        from queuert_sqlite import SqliteStateAdapter

        assert isinstance(backend.state, SqliteStateAdapter)
        async with backend.state.connect() as conn:
            await conn.execute(statement)
            await conn.commit()
        return
    pg = await asyncpg.connect(backend._pg_url)
    try:
        await pg.execute(f'SET search_path TO "{backend._schema}"')
        await pg.execute(statement)
    finally:
        await pg.close()


async def assert_refused(backend: Backend, error: type[SchemaNotMigratedError], *shown: str) -> str:
    state = await backend.open_another()
    try:
        with pytest.raises(error) as raised:
            await state.check_schema()
        app: queuert.Queuert[Any] = queuert.Queuert(state=state, chains=[jobs])
        worker = make_worker(app)

        @worker.handler(jobs)
        async def handle(job: Job[int], ctx: JobContext[Any, int]) -> int:
            return job.input

        with pytest.raises(error):
            await worker.start()
        assert worker.active_jobs == 0
    finally:
        await state.close()
    message = str(raised.value)
    for text in shown:
        assert text in message
    return message


async def test_a_newer_schema_is_refused(shared_backend: Backend) -> None:
    await run_sql(
        shared_backend,
        "INSERT INTO {prefix}migrations (version, name, applied_at) VALUES (99, 'from the future', "
        + ("0)" if shared_backend.name == "sqlite" else "now())"),
    )
    message = await assert_refused(shared_backend, SchemaTooNewError, "99", "upgrade")
    assert "migrate()" not in message  # migrating cannot help


async def test_a_schema_whose_tables_are_missing_is_refused(shared_backend: Backend) -> None:
    # PostgreSQL refuses to drop a table that others reference (job_blockers) unless
    # told to drop those references too.
    cascade = "" if shared_backend.name == "sqlite" else " CASCADE"
    await run_sql(shared_backend, "DROP TABLE {prefix}jobs" + cascade)
    await assert_refused(shared_backend, SchemaDamagedError, "jobs", "missing")


async def test_a_stored_time_beyond_datetime_is_a_named_error(tmp_path: Path) -> None:
    """On SQLite (integers; PostgreSQL's timestamptz cannot hold such a time at all),
    a lease written before leases had an upper bound, or by hand, reads back as an
    AdapterError, not a raw OverflowError."""
    async with open_backend("sqlite", tmp_path) as backend:
        app: queuert.Queuert[Any] = queuert.Queuert(state=backend.state, chains=[jobs])
        handle = await app.enqueue_job_chain(None, jobs, 1)
        await run_sql(backend, f"UPDATE {{prefix}}jobs SET leased_until = {2**62}")
        with pytest.raises(queuert.AdapterError) as raised:
            await app.get_job(handle.id)
        assert str(2**62) in str(raised.value)


async def test_a_postgres_time_beyond_datetime_is_a_named_error(tmp_path: Path) -> None:
    """PostgreSQL's timestamptz reaches year 294276: a lease written there before
    leases had an upper bound reads back as an AdapterError, not a raw
    OverflowError from the driver."""
    async with open_backend("postgres", tmp_path) as backend:
        app: queuert.Queuert[Any] = queuert.Queuert(state=backend.state, chains=[jobs])
        handle = await app.enqueue_job_chain(None, jobs, 1)
        await run_sql(backend, "UPDATE {prefix}jobs SET leased_until = '287453-01-01T00:00Z'")
        with pytest.raises(queuert.AdapterError):
            await app.get_job(handle.id)
        # The adapter's connections are still usable.
        other = await app.enqueue_job_chain(None, jobs, 2)
        for _ in range(3):
            record = await app.get_job(other.id)
            assert record is not None and record.input == "2"


async def test_a_stored_output_that_does_not_read_back_is_a_named_error(
    shared_backend: Backend,
) -> None:
    """An output changed in the store (or written under another output type) makes
    ``wait_for_chain`` raise InputValidationError, not pydantic's own error."""
    app: queuert.Queuert[Any] = queuert.Queuert(state=shared_backend.state, chains=[jobs])
    worker = make_worker(app)

    @worker.handler(jobs)
    async def handle(job: Job[int], ctx: JobContext[Any, int]) -> int:
        return await ctx.complete(job.input)

    async with worker:
        handle_ = await app.enqueue_job_chain(None, jobs, 7)
        assert await app.wait_for_chain(handle_, timeout=5.0) == 7
    await run_sql(shared_backend, """UPDATE {prefix}jobs SET output = '"seven"'""")
    with pytest.raises(queuert.InputValidationError) as raised:
        await app.wait_for_chain(handle_, timeout=5.0)
    assert handle_.id in str(raised.value)
