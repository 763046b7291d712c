"""An operation whose commit succeeded but whose acknowledgement was lost (the
connection dropped right after COMMIT) is retried by core as a transient failure;
the retry must report what happened, not an error made by the first try."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

import queuert
from queuert.errors import TransientStateError
from queuert.records import JobRecord, NewJob
from queuert_postgres import PostgresStateAdapter


@dataclass
class Num:
    n: int


chain = queuert.chain("lost-acks", input=Num, output=Num)


class AckLostOnce(PostgresStateAdapter):
    """Commits the first creation, then reports it lost, as a connection dropped
    between COMMIT and its answer would."""

    lost = 0

    async def create_jobs(self, *, tx: Any, jobs: Sequence[NewJob]) -> Sequence[JobRecord]:
        records = await super().create_jobs(tx=tx, jobs=jobs)
        if tx is None and not self.lost:
            self.lost += 1
            raise TransientStateError("connection lost before the commit was acknowledged")
        return records


async def test_a_retried_creation_whose_first_try_committed_reports_the_chains(
    pool: asyncpg.Pool[asyncpg.Record], schema: str
) -> None:
    state = AckLostOnce(pool, schema=schema)
    app = queuert.Queuert(state=state, chains=[chain])
    await app.migrate()
    try:
        handles = await app.enqueue_job_chains(None, chain, [Num(1), Num(2)])
        assert state.lost == 1
        chains = await app.list_chains()
        assert sorted(c.id for c in chains.items) == sorted(h.id for h in handles)
    finally:
        await app.close()


class AcquireAckLostOnce(PostgresStateAdapter):
    """Commits the first acquisition that leases jobs, then reports it lost."""

    lost = 0

    async def acquire_jobs(
        self, *, tx: Any, queues: Sequence[str], limit: int, owner: str, lease_ms: int
    ) -> list[JobRecord]:
        records = await super().acquire_jobs(
            tx=tx, queues=queues, limit=limit, owner=owner, lease_ms=lease_ms
        )
        if tx is None and records and not self.lost:
            self.lost += 1
            raise TransientStateError("connection lost before the commit was acknowledged")
        return records


async def test_jobs_of_a_retried_acquisition_whose_first_try_committed_are_run(
    pool: asyncpg.Pool[asyncpg.Record], schema: str
) -> None:
    state = AcquireAckLostOnce(pool, schema=schema)
    app = queuert.Queuert(state=state, chains=[chain])
    await app.migrate()
    # Leases far longer than the test: a job leased to nobody would wait for it.
    worker = app.worker(concurrency=4, poll_interval=0.05, lease_ms=120_000)

    @worker.handler(chain)
    async def run(job: queuert.Job[Num], ctx: queuert.JobContext[Any, Num]) -> Any:
        async def commit(tx: Any, enqueue_job: queuert.EnqueueJob[Num]) -> Num:
            return Num(job.input.n + 1)

        return await ctx.finalize(commit)

    try:
        handles = await app.enqueue_job_chains(None, chain, [Num(1), Num(2)])
        async with worker:
            outputs = [await app.wait_for_chain(h, timeout=15) for h in handles]
        assert state.lost == 1
        assert outputs == [Num(2), Num(3)]
        for h in handles:
            job = await app.get_job(h.id)
            assert job is not None and job.attempt == 1
    finally:
        await app.close()


limited = queuert.chain("lost-acks-limited", input=Num, output=Num, concurrency_limit=2)


class LimitedAckLostOnce(PostgresStateAdapter):
    """Commits the first limited acquisition that leases jobs, then reports it lost."""

    lost = 0

    async def acquire_limited_jobs(
        self,
        *,
        tx: Any,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        concurrency_limit: int,
        per_key: bool,
    ) -> list[JobRecord]:
        records = await super().acquire_limited_jobs(
            tx=tx,
            queue=queue,
            limit=limit,
            owner=owner,
            lease_ms=lease_ms,
            concurrency_limit=concurrency_limit,
            per_key=per_key,
        )
        if tx is None and records and not self.lost:
            self.lost += 1
            raise TransientStateError("connection lost before the commit was acknowledged")
        return records


async def test_jobs_of_a_retried_limited_acquisition_whose_first_try_committed_are_run(
    pool: asyncpg.Pool[asyncpg.Record], schema: str
) -> None:
    state = LimitedAckLostOnce(pool, schema=schema)
    app = queuert.Queuert(state=state, chains=[limited])
    await app.migrate()
    # Leases far longer than the test: a job leased to nobody would wait for it.
    worker = app.worker(concurrency=4, poll_interval=0.05, lease_ms=120_000)

    @worker.handler(limited)
    async def run(job: queuert.Job[Num], ctx: queuert.JobContext[Any, Num]) -> Any:
        async def commit(tx: Any, enqueue_job: queuert.EnqueueJob[Num]) -> Num:
            return Num(job.input.n + 1)

        return await ctx.finalize(commit)

    try:
        handles = await app.enqueue_job_chains(None, limited, [Num(1), Num(2)])
        async with worker:
            outputs = [await app.wait_for_chain(h, timeout=15) for h in handles]
        assert state.lost == 1
        assert outputs == [Num(2), Num(3)]
        for h in handles:
            job = await app.get_job(h.id)
            assert job is not None and job.attempt == 1
    finally:
        await app.close()


serial = queuert.chain("lost-acks-hand-off", input=Num, output=Num, concurrency_limit=1)


class HandOffAckLostOnce(PostgresStateAdapter):
    """Commits the first completion that hands its place on, then reports it lost."""

    lost = 0

    async def complete_job_and_hand_off(self, **options: Any) -> tuple[JobRecord, JobRecord | None]:
        completed, handed = await super().complete_job_and_hand_off(**options)
        if handed is not None and not self.lost:
            self.lost += 1
            raise TransientStateError("connection lost before the commit was acknowledged")
        return completed, handed


async def test_the_job_of_a_retried_hand_off_whose_first_try_committed_is_run(
    pool: asyncpg.Pool[asyncpg.Record], schema: str
) -> None:
    state = HandOffAckLostOnce(pool, schema=schema)
    app = queuert.Queuert(state=state, chains=[serial])
    await app.migrate()
    # A poll and leases far longer than the test: only the recovery runs the job
    # the first try handed the place to.
    worker = app.worker(concurrency=2, poll_interval=60.0, lease_ms=120_000)

    @worker.handler(serial)
    async def run(job: queuert.Job[Num], ctx: queuert.JobContext[Any, Num]) -> Num:
        return Num(job.input.n + 1)

    try:
        handles = await app.enqueue_job_chains(None, serial, [Num(1), Num(2), Num(3)])
        async with worker:
            outputs = [await app.wait_for_chain(h, timeout=15) for h in handles]
        assert state.lost == 1
        assert outputs == [Num(2), Num(3), Num(4)]
        for h in handles:
            job = await app.get_job(h.id)
            assert job is not None and job.attempt == 1
        assert app.metrics.get("state.complete_job_and_hand_off.found_done") == 1
    finally:
        await app.close()
