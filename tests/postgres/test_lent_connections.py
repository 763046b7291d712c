"""A connection the adapter lends to the application's code comes back clean: session
state set inside one of its transactions (SET, LISTEN, advisory locks) does not
reach the next user of the pool, whether the transaction committed, rolled back
or failed at COMMIT (asyncpg's reset, run by the pool's ``reset`` hook). A leased
transaction checks its lease exactly, with server-side parameters, on the adapter's
own pool and on the application's.
A connection the adapter used for its own statements is replaced when it dies,
and never keeps a transaction waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest
import pytest_asyncio

from queuert.errors import LeaseLostError, QueuertError, TransientStateError
from queuert_postgres import PostgresStateAdapter
from queuert_postgres.connections import PostgresTx
from tests.postgres.conftest import unique_name
from tests.postgres.helpers import new_job

LOCK_KEY = 4_242_001


@pytest_asyncio.fixture
async def single(postgres_url: str, schema: str) -> AsyncIterator[PostgresStateAdapter]:
    """An adapter whose pool has one connection, so every transaction reuses it."""
    adapter = await PostgresStateAdapter.connect(
        postgres_url, schema=schema, min_size=1, max_size=1
    )
    await adapter.migrate()
    yield adapter
    await adapter.close()


async def dirty(tx: PostgresTx) -> None:
    await tx.execute("SET statement_timeout = '4321ms'")
    await tx.execute("LISTEN queuert_lent_test")
    await tx.execute(f"SELECT pg_advisory_lock({LOCK_KEY})")
    # The application may nest its own asyncpg transaction (a savepoint).
    async with tx.transaction():
        await tx.execute("SET application_name = 'dirty'")


async def session_state(adapter: PostgresStateAdapter) -> tuple[str, list[str], bool, str]:
    async with adapter.transaction() as tx:
        timeout = await tx.fetchval("SHOW statement_timeout")
        channels = [r[0] for r in await tx.fetch("SELECT pg_listening_channels()")]
        holds_lock = await tx.fetchval(
            "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' "
            "AND pid = pg_backend_pid() AND objid = $1",
            LOCK_KEY,
        )
        name = await tx.fetchval("SHOW application_name")
    return timeout, channels, holds_lock, name


async def test_state_set_in_a_committed_transaction_does_not_leak(
    single: PostgresStateAdapter,
) -> None:
    async with single.transaction() as tx:
        await dirty(tx)
    assert await session_state(single) == ("0", [], False, "queuert")


async def test_a_committed_transaction_returns_before_its_connection_is_reset(
    postgres_url: str, schema: str
) -> None:
    """The reset is a round trip the transaction's caller need not wait for: the
    connection goes back to the pool in the background, reset before anyone else
    gets it, and close() waits for it."""
    resets: list[str] = []

    def logged(record: asyncpg.connection.LoggedQuery) -> None:
        if "UNLISTEN" in record.query:  # part of asyncpg's reset query
            resets.append(record.query)

    async def init(conn: asyncpg.Connection[asyncpg.Record]) -> None:
        conn.add_query_logger(logged)

    adapter = await PostgresStateAdapter.connect(
        postgres_url, schema=schema, min_size=1, max_size=1, init=init
    )
    try:
        await adapter.migrate()
        resets.clear()
        async with adapter.transaction() as tx:
            await dirty(tx)
        assert resets == [], "the caller waited for the reset"
        # The one connection comes back reset before the next transaction gets it.
        assert await session_state(adapter) == ("0", [], False, "queuert")
        assert len(resets) == 1
        async with adapter.transaction() as tx:
            await dirty(tx)
    finally:
        await adapter.close()
    assert len(resets) == 3, "close() did not wait for the last reset"


async def test_state_set_in_a_rolled_back_transaction_does_not_leak(
    single: PostgresStateAdapter,
) -> None:
    with pytest.raises(RuntimeError):
        async with single.transaction() as tx:
            await dirty(tx)
            raise RuntimeError("the application gives up")
    assert await session_state(single) == ("0", [], False, "queuert")


async def test_state_set_in_a_transaction_whose_commit_fails_does_not_leak(
    single: PostgresStateAdapter, schema: str
) -> None:
    table = f'"{schema}".deferred_unique'
    async with single.transaction() as tx:
        await tx.execute(f"CREATE TABLE {table} (k int UNIQUE DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(QueuertError):
        async with single.transaction() as tx:
            await dirty(tx)
            # Checked only at COMMIT, which therefore fails.
            await tx.execute(f"INSERT INTO {table} VALUES (1), (1)")
    assert await session_state(single) == ("0", [], False, "queuert")
    # And the connection is usable for the adapter's own statements.
    assert await single.get_job(tx=None, job_id="nope") is None


async def test_a_job_end_that_fails_with_the_commit_undoes_the_whole_transaction(
    single: PostgresStateAdapter,
) -> None:
    loop = asyncio.get_running_loop()
    complaints: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: complaints.append(context))
    try:
        await single.create_jobs(tx=None, jobs=[new_job()])
        (job,) = await single.acquire_jobs(
            tx=None, queues=["q"], limit=1, owner="w", lease_ms=60_000
        )
        started = new_job("other")
        with pytest.raises(QueuertError):
            async with single.leased_transaction(lease=job.lease, lock=True) as tx:
                await dirty(tx)
                await single.create_jobs(tx=tx, jobs=[started])
                # Not JSON: refused by the statement; the whole transaction rolls back.
                await single.complete_locked_job(tx=tx, lease=job.lease, output="not json")
        assert await single.get_job(tx=None, job_id=job.id) == job
        assert await single.get_job(tx=None, job_id=started.id) is None
        assert await session_state(single) == ("0", [], False, "queuert")
        async with single.leased_transaction(lease=job.lease, lock=True) as tx:
            await single.complete_locked_job(tx=tx, lease=job.lease, output='"ok"')
        done = await single.get_job(tx=None, job_id=job.id)
        assert done is not None and done.output == '"ok"'
        # The aborted transaction was ended, not left for the pool to find.
        assert complaints == []
    finally:
        loop.set_exception_handler(None)


async def test_a_job_end_holding_a_nul_character_is_refused_as_postgresql_refuses_it(
    single: PostgresStateAdapter,
) -> None:
    await single.create_jobs(tx=None, jobs=[new_job()])
    (job,) = await single.acquire_jobs(tx=None, queues=["q"], limit=1, owner="w", lease_ms=60_000)
    with pytest.raises(QueuertError):
        async with single.leased_transaction(lease=job.lease, lock=True) as tx:
            await single.complete_locked_job(tx=tx, lease=job.lease, output='"a\x00b"')
    assert await single.get_job(tx=None, job_id=job.id) == job


async def test_a_pool_of_the_applications_own_is_left_to_its_own_reset(
    postgres_url: str, schema: str
) -> None:
    pool = await asyncpg.create_pool(postgres_url, min_size=1, max_size=1)
    adapter = PostgresStateAdapter(pool, schema=schema)
    try:
        await adapter.migrate()
        async with adapter.transaction() as tx:
            await dirty(tx)
        timeout, channels, holds_lock, _ = await session_state(adapter)
        assert (timeout, channels, holds_lock) == ("0", [], False)
    finally:
        await adapter.close()
        await pool.close()


@pytest.mark.parametrize("pool_kind", ["own", "application"])
@pytest.mark.parametrize("lock", [False, True], ids=["verify", "lock"])
async def test_a_leased_transaction_checks_owners_with_quotes_and_backslashes(
    postgres_url: str, schema: str, pool_kind: str, lock: bool
) -> None:
    # Owners are worker ids, which the application may choose freely.
    owner = "it's a \\ worker; DROP TABLE x --"
    pool = None
    if pool_kind == "own":
        adapter = await PostgresStateAdapter.connect(postgres_url, schema=schema, max_size=2)
    else:
        pool = await asyncpg.create_pool(postgres_url, min_size=1, max_size=2)
        adapter = PostgresStateAdapter(pool, schema=schema)
    try:
        await adapter.migrate()
        await adapter.create_jobs(tx=None, jobs=[new_job()])
        (job,) = await adapter.acquire_jobs(
            tx=None, queues=["q"], limit=1, owner=owner, lease_ms=60_000
        )
        for wrong in (
            replace(job.lease, owner=owner.replace("\\", "\\\\")),
            replace(job.lease, attempt=2),
        ):
            with pytest.raises(LeaseLostError):
                async with adapter.leased_transaction(lease=wrong, lock=lock):
                    raise AssertionError("the block ran without the lease")
        async with adapter.leased_transaction(lease=job.lease, lock=lock) as tx:
            if lock:
                await adapter.complete_locked_job(tx=tx, lease=job.lease, output='"ok"')
            else:
                await adapter.complete_job(tx=tx, lease=job.lease, output='"ok"')
        done = await adapter.get_job(tx=None, job_id=job.id)
        assert done is not None and done.output == '"ok"'
    finally:
        await adapter.close()
        if pool is not None:
            await pool.close()


async def test_the_adapters_own_connection_is_replaced_when_it_dies(
    postgres_url: str, schema: str
) -> None:
    name = unique_name("own")
    adapter = await PostgresStateAdapter.connect(
        postgres_url, schema=schema, max_size=2, server_settings={"application_name": name}
    )
    try:
        await adapter.migrate()
        assert await adapter.get_job(tx=None, job_id="none") is None
        killer = await asyncpg.connect(postgres_url)
        try:
            killed = await killer.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1",
                name,
            )
        finally:
            await killer.close()
        assert killed >= 1
        failures = 0
        for _ in range(killed + 2):
            try:
                assert await adapter.get_job(tx=None, job_id="none") is None
            except TransientStateError:
                failures += 1  # the statement that finds a connection dead
        # A dead connection costs at most the statement that found it dead (when the
        # pool had not noticed yet); the next ones get a new one.
        assert failures <= killed
        assert await adapter.get_job(tx=None, job_id="none") is None
    finally:
        await adapter.close()


@pytest.mark.parametrize("max_size", [1, 2])
async def test_the_adapters_own_connection_never_starves_a_transaction(
    postgres_url: str, schema: str, max_size: int
) -> None:
    adapter = await PostgresStateAdapter.connect(
        postgres_url, schema=schema, min_size=1, max_size=max_size
    )
    try:
        await adapter.migrate()
        # Single statements first, so that the adapter has a connection it keeps.
        await adapter.create_jobs(tx=None, jobs=[new_job()])
        assert await adapter.get_job(tx=None, job_id="none") is None
        async with asyncio.timeout(10):
            # Every other connection of the pool is taken by the application's work.
            async with adapter.transaction() as outer:
                if max_size == 1:
                    assert await outer.fetchval("SELECT 1") == 1
                else:
                    async with adapter.transaction() as inner:
                        assert await inner.fetchval("SELECT 1") == 1
            assert await adapter.get_job(tx=None, job_id="none") is None
    finally:
        await adapter.close()


async def test_kept_connections_never_keep_concurrent_transactions_waiting(
    postgres_url: str, schema: str
) -> None:
    adapter = await PostgresStateAdapter.connect(
        postgres_url, schema=schema, min_size=1, max_size=3
    )
    try:
        await adapter.migrate()
        # The adapter keeps the pool's one open connection for its own statements; the
        # transactions below open the others, and each such open lets the next start.
        assert await adapter.get_job(tx=None, job_id="none") is None
        inside = 0
        all_inside = asyncio.Event()

        async def hold() -> None:
            nonlocal inside
            async with adapter.transaction() as tx:
                assert await tx.fetchval("SELECT 1") == 1
                inside += 1
                if inside == 3:
                    all_inside.set()
                await all_inside.wait()

        # As many transactions at once as the pool has connections.
        async with asyncio.timeout(10):
            await asyncio.gather(*(hold() for _ in range(3)))
    finally:
        await adapter.close()
