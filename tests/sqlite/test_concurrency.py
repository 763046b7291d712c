"""Several adapters and processes sharing one database file."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from collections import Counter
from dataclasses import replace

import aiosqlite
import pytest

from queuert.errors import LeaseLostError, TransientStateError
from queuert.records import JobFilter, JobStatus
from queuert_sqlite import SqliteStateAdapter
from tests.sqlite.helpers import new_job


async def drain(state: SqliteStateAdapter, owner: str) -> list[str]:
    """Acquire jobs of queue ``q`` in small batches until none is left."""
    taken: list[str] = []
    while True:
        jobs = await state.acquire_jobs(
            tx=None, queues=["q"], limit=7, owner=owner, lease_ms=60_000
        )
        if not jobs:
            return taken
        taken += [job.id for job in jobs]


async def test_adapters_sharing_a_file_never_acquire_the_same_job(
    adapter: SqliteStateAdapter, db_path: str
) -> None:
    jobs = await adapter.create_jobs(tx=None, jobs=[new_job() for _ in range(400)])
    others = [SqliteStateAdapter(db_path) for _ in range(3)]
    try:
        results = await asyncio.gather(
            *(drain(state, f"w{i}") for i, state in enumerate([adapter, *others]))
        )
    finally:
        for state in others:
            await state.close()
    taken = Counter(job_id for result in results for job_id in result)
    assert set(taken) == {job.id for job in jobs}
    assert max(taken.values()) == 1


WORKER_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from queuert_sqlite import SqliteStateAdapter

    async def main(path, owner):
        state = SqliteStateAdapter(path, busy_timeout_ms=10_000)
        await state.check_schema()
        taken = []
        while True:
            jobs = await state.acquire_jobs(
                tx=None, queues=["q"], limit=5, owner=owner, lease_ms=60_000
            )
            if not jobs:
                break
            for job in jobs:
                async with state.transaction() as tx:
                    await state.lock_job(tx=tx, lease=job.lease)
                    await state.complete_job(tx=tx, lease=job.lease, output="1")
                taken.append(job.id)
        await state.close()
        print(json.dumps(taken))

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


@pytest.mark.timeout(60)
async def test_worker_processes_sharing_a_file_each_finish_distinct_jobs(
    adapter: SqliteStateAdapter, db_path: str
) -> None:
    jobs = await adapter.create_jobs(tx=None, jobs=[new_job() for _ in range(300)])
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER_SCRIPT,
            db_path,
            f"process-{i}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for i in range(3)
    ]
    taken: Counter[str] = Counter()
    for process in processes:
        out, err = await asyncio.wait_for(process.communicate(), timeout=50)
        assert process.returncode == 0, err.decode()
        taken.update(json.loads(out))
    assert set(taken) == {job.id for job in jobs}
    assert max(taken.values()) == 1
    done = await adapter.list_jobs(
        tx=None, filter=JobFilter(statuses=(JobStatus.COMPLETED,)), after=None, limit=1000
    )
    assert len(done.items) == len(jobs)


async def test_a_write_waiting_past_the_busy_timeout_is_transient(db_path: str) -> None:
    state = SqliteStateAdapter(db_path, busy_timeout_ms=100)
    await state.migrate()
    try:
        async with aiosqlite.connect(db_path, isolation_level=None) as other:
            await other.execute("BEGIN IMMEDIATE")  # another process holding the write lock
            with pytest.raises(TransientStateError, match="busy"):
                await state.create_jobs(tx=None, jobs=[new_job()])
            with pytest.raises(TransientStateError):
                async with state.transaction():
                    pass
            # Readers are not blocked by the writer in WAL mode.
            page = await state.list_jobs(tx=None, filter=JobFilter(), after=None, limit=10)
            assert page.items == []
            await other.rollback()
        await state.create_jobs(tx=None, jobs=[new_job()])
    finally:
        await state.close()


async def test_a_write_waits_for_another_process_within_the_busy_timeout(
    adapter: SqliteStateAdapter, db_path: str
) -> None:
    async with aiosqlite.connect(db_path, isolation_level=None) as other:
        await other.execute("BEGIN IMMEDIATE")
        write = asyncio.create_task(adapter.create_jobs(tx=None, jobs=[new_job()]))
        await asyncio.sleep(0.05)  # give the write the chance to (wrongly) go through
        assert not write.done()
        await other.commit()
        await asyncio.wait_for(write, timeout=5)
    page = await adapter.list_jobs(tx=None, filter=JobFilter(), after=None, limit=10)
    assert len(page.items) == 1


async def test_lock_job_holds_off_a_reaper_in_another_process_until_commit(
    db_path: str,
) -> None:
    worker = SqliteStateAdapter(db_path)
    reaper = SqliteStateAdapter(db_path)
    await worker.migrate()
    try:
        await worker.create_jobs(tx=None, jobs=[new_job()])
        (job,) = await worker.acquire_jobs(tx=None, queues=["q"], limit=1, owner="w", lease_ms=1)
        await asyncio.sleep(0.01)  # let the 1 ms lease lapse
        async with worker.transaction() as tx:
            await worker.lock_job(tx=tx, lease=job.lease)
            reap = asyncio.create_task(reaper.reap_expired_leases(tx=None, limit=10))
            await asyncio.sleep(0.05)
            assert not reap.done(), "the reaper must wait for the lock"
            await worker.complete_job(tx=tx, lease=job.lease, output='"ok"')
        assert await asyncio.wait_for(reap, timeout=5) == []
        stored = await reaper.get_job(tx=None, job_id=job.id)
        assert stored is not None and stored.status is JobStatus.COMPLETED
    finally:
        await worker.close()
        await reaper.close()


async def test_many_tasks_of_one_adapter_take_turns_writing(adapter: SqliteStateAdapter) -> None:
    async def enqueue_in_transaction() -> None:
        async with adapter.transaction() as tx:
            await adapter.create_jobs(tx=tx, jobs=[new_job()])
            await asyncio.sleep(0)  # yield while holding the write lock

    await asyncio.gather(*(enqueue_in_transaction() for _ in range(50)))
    page = await adapter.list_jobs(tx=None, filter=JobFilter(), after=None, limit=100)
    assert len(page.items) == 50


async def test_uncommitted_writes_stay_invisible_to_readers_in_this_and_other_processes(
    adapter: SqliteStateAdapter, db_path: str
) -> None:
    other = SqliteStateAdapter(db_path)
    try:
        async with adapter.transaction() as tx:
            (created,) = await adapter.create_jobs(tx=tx, jobs=[new_job()])
            for reader in (adapter, other):
                assert await reader.get_job(tx=None, job_id=created.id) is None
                assert await reader.time_until_next_job(tx=None, queues=["q"]) is None
        assert await other.get_job(tx=None, job_id=created.id) == created
    finally:
        await other.close()


@pytest.mark.parametrize("competitor_is_another_process", [False, True])
async def test_a_locked_job_holds_off_a_competing_finalize_until_commit(
    adapter: SqliteStateAdapter, db_path: str, competitor_is_another_process: bool
) -> None:
    other = SqliteStateAdapter(db_path) if competitor_is_another_process else adapter
    try:
        await adapter.create_jobs(tx=None, jobs=[new_job()])
        (job,) = await adapter.acquire_jobs(
            tx=None, queues=["q"], limit=1, owner="w", lease_ms=60_000
        )
        async with adapter.transaction() as tx:
            await adapter.lock_job(tx=tx, lease=job.lease)
            competitor = asyncio.create_task(
                other.complete_job(tx=None, lease=job.lease, output='"theirs"')
            )
            done, _ = await asyncio.wait({competitor}, timeout=0.1)
            assert not done, "a competing write went through while the job was locked"
            await adapter.complete_job(tx=tx, lease=job.lease, output='"ours"')
        with pytest.raises(LeaseLostError):
            await asyncio.wait_for(competitor, timeout=5)
        final = await adapter.get_job(tx=None, job_id=job.id)
        assert final is not None and final.output == '"ours"'
    finally:
        if other is not adapter:
            await other.close()


async def test_concurrent_completions_each_get_their_own_outcome(
    adapter: SqliteStateAdapter,
) -> None:
    await adapter.create_jobs(tx=None, jobs=[new_job() for _ in range(20)])
    jobs = await adapter.acquire_jobs(tx=None, queues=["q"], limit=20, owner="w", lease_ms=60_000)
    stale = {jobs[3].id, jobs[11].id}
    leases = [
        replace(job.lease, attempt=job.attempt + 1) if job.id in stale else job.lease
        for job in jobs
    ]
    # The first job twice at once: exactly one of the two completes it.
    leases.append(jobs[0].lease)
    outcomes = await asyncio.gather(
        *(
            adapter.complete_job(tx=None, lease=lease, output=str(i))
            for i, lease in enumerate(leases)
        ),
        return_exceptions=True,
    )
    lost = [
        lease.job_id
        for lease, o in zip(leases, outcomes, strict=True)
        if isinstance(o, LeaseLostError)
    ]
    assert sorted(lost) == sorted([*stale, jobs[0].id])
    for job in jobs:
        stored = await adapter.get_job(tx=None, job_id=job.id)
        assert stored is not None
        expected = JobStatus.RUNNING if job.id in stale else JobStatus.COMPLETED
        assert stored.status is expected
    first = await adapter.get_job(tx=None, job_id=jobs[0].id)
    assert first is not None and first.output in ("0", str(len(jobs)))
