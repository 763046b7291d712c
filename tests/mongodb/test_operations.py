"""Behaviour particular to MongoDB, on a real replica set (needs
``QUEUERT_TEST_MONGODB_URL``; see tests/mongodb/server.py)."""

from __future__ import annotations

import pytest

from queuert.conformance.support import new_job, running_job
from queuert.errors import AdapterError, SchemaNotMigratedError, TransientStateError
from queuert.records import DedupKey, JobStatus
from queuert_mongodb import MongoStateAdapter
from queuert_mongodb.migrations import MIGRATIONS, SCHEMA_VERSION


class Rollback(Exception):
    pass


async def test_jobs_enqueued_in_the_callers_session_exist_when_it_commits(
    adapter: MongoStateAdapter,
) -> None:
    kept, dropped = new_job(), new_job()
    async with adapter.client.start_session() as session:
        async with await session.start_transaction():
            await adapter.create_jobs(tx=session, jobs=[kept])
            assert await adapter.get_job(tx=None, job_id=kept.id) is None
        with pytest.raises(Rollback):
            async with await session.start_transaction():
                await adapter.create_jobs(tx=session, jobs=[dropped])
                raise Rollback
    assert await adapter.get_job(tx=None, job_id=kept.id) is not None
    assert await adapter.get_job(tx=None, job_id=dropped.id) is None


async def test_unmigrated_database_names_the_call_to_make(mongodb_url: str, database: str) -> None:
    adapter = await MongoStateAdapter.connect(mongodb_url, database=database)
    try:
        with pytest.raises(SchemaNotMigratedError) as raised:
            await adapter.get_job(tx=None, job_id="j")
        assert "migrate()" in str(raised.value) and database in str(raised.value)
        await adapter.migrate()
        assert await adapter.get_job(tx=None, job_id="j") is None
    finally:
        await adapter.close()


async def test_migrate_creates_every_index_and_records_the_version(
    adapter: MongoStateAdapter,
) -> None:
    database = adapter.client[adapter.database]
    for migration in MIGRATIONS:
        for role, specs in migration.index_groups().items():
            collection = database[adapter.collections.named(role)]
            indexes = {index["name"]: index async for index in await collection.list_indexes()}
            for spec in specs:
                assert list(indexes[spec.name]["key"].items()) == list(spec.keys)
                assert bool(indexes[spec.name].get("unique")) == spec.unique
    meta = adapter.client[adapter.database][adapter.collections.meta]
    document = await meta.find_one({"_id": "schema"})
    assert document is not None and document["version"] == SCHEMA_VERSION
    await adapter.migrate()
    assert await meta.count_documents({}) == 1


async def test_a_database_at_version_1_is_migrated_to_the_current_version(
    adapter: MongoStateAdapter,
) -> None:
    meta = adapter.client[adapter.database][adapter.collections.meta]
    await meta.update_one({"_id": "schema"}, {"$set": {"version": 1}})
    with pytest.raises(SchemaNotMigratedError, match="schema version 1"):
        await adapter.check_schema()
    await adapter.migrate()
    await adapter.check_schema()


async def test_a_batch_acquisition_returns_the_jobs_as_stored(
    adapter: MongoStateAdapter,
) -> None:
    # The batch records are built from the candidates read and the claim written,
    # without reading the jobs back: they must equal what a read returns.
    created = await adapter.create_jobs(tx=None, jobs=[new_job("batch") for _ in range(4)])
    acquired = await adapter.acquire_jobs(
        tx=None, queues=["batch"], limit=3, owner="w", lease_ms=60_000
    )
    assert len(acquired) == 3 and {j.id for j in acquired} <= {j.id for j in created}
    for job in acquired:
        assert await adapter.get_job(tx=None, job_id=job.id) == job
        assert job.status is JobStatus.RUNNING and job.attempt == 1
        assert job.leased_until is not None and job.leased_until > job.updated_at


async def test_newer_schema_asks_for_an_upgrade(adapter: MongoStateAdapter) -> None:
    meta = adapter.client[adapter.database][adapter.collections.meta]
    await meta.update_one({"_id": "schema"}, {"$set": {"version": SCHEMA_VERSION + 1}})
    with pytest.raises(SchemaNotMigratedError, match="upgrade queuert-mongodb"):
        await adapter.check_schema()
    with pytest.raises(SchemaNotMigratedError, match="upgrade queuert-mongodb"):
        await adapter.migrate()


async def test_second_finalizer_conflicts_while_the_first_holds_the_job(
    adapter: MongoStateAdapter,
) -> None:
    job = await running_job(adapter)
    async with adapter.leased_transaction(lease=job.lease, lock=True):
        with pytest.raises(TransientStateError):
            async with adapter.leased_transaction(lease=job.lease, lock=True):
                pass


async def test_duplicate_in_the_callers_session_is_refused(adapter: MongoStateAdapter) -> None:
    job = new_job()
    await adapter.create_jobs(tx=None, jobs=[job])
    with pytest.raises(AdapterError, match="duplicate key"):
        async with adapter.transaction() as tx:
            await adapter.create_jobs(tx=tx, jobs=[job])


async def test_values_that_look_like_field_paths_are_stored_as_given(
    adapter: MongoStateAdapter,
) -> None:
    job = new_job("$attempt", input='"$input"')
    created = await running_job(adapter, job, owner="$leased_by")
    assert (created.queue, created.input, created.leased_by) == (
        "$attempt",
        '"$input"',
        "$leased_by",
    )
    done = await adapter.complete_job(tx=None, lease=created.lease, output='"$output"')
    assert done.status is JobStatus.COMPLETED and done.output == '"$output"'


async def test_a_start_racing_an_open_transaction_for_its_key_in_a_callers_session(
    adapter: MongoStateAdapter,
) -> None:
    # MongoDB aborts a transaction on a write conflict instead of waiting: the start
    # in the caller's session raises for the caller to run its transaction again.
    key = [DedupKey("race")]
    async with adapter.transaction() as holder:
        await adapter.create_deduplicated_jobs(tx=holder, jobs=[new_job("dedup")], dedup=key)
        with pytest.raises(TransientStateError):
            async with adapter.transaction() as racing:
                await adapter.create_deduplicated_jobs(
                    tx=racing, jobs=[new_job("dedup")], dedup=key
                )
    # Without a session of its own the start waits for the holder and returns its chain.
    (first,) = await adapter.create_deduplicated_jobs(tx=None, jobs=[new_job("dedup")], dedup=key)
    (again,) = await adapter.create_deduplicated_jobs(tx=None, jobs=[new_job("dedup")], dedup=key)
    assert first == again


async def test_limited_acquisitions_of_one_queue_take_turns(adapter: MongoStateAdapter) -> None:
    await adapter.create_jobs(tx=None, jobs=[new_job("turns") for _ in range(3)])

    async def acquire(tx: object) -> list[str]:
        jobs = await adapter.acquire_limited_jobs(
            tx=tx,  # type: ignore[arg-type]
            queue="turns",
            limit=5,
            owner="w",
            lease_ms=60_000,
            concurrency_limit=2,
            per_key=False,
        )
        return [job.id for job in jobs]

    async with adapter.transaction() as first:
        assert len(await acquire(first)) == 2
        with pytest.raises(TransientStateError):
            async with adapter.transaction() as second:
                await acquire(second)
    assert await acquire(None) == []
