"""Operating chains from outside a worker, on every backend: cancelling a running
chain (its handler is cancelled and its finalize commits nothing), retrying a
failed chain where it ended, completing a job from outside exactly once, purging,
worker records, explanations, counts and listings."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import queuert
from queuert import (
    ChainEndedError,
    InputValidationError,
    Job,
    JobContext,
    JobNotFoundError,
    JobStateError,
    JobStatus,
    LeaseLostError,
    NonRetryableError,
    ValidationError,
)
from tests.e2e.backends import Backend
from tests.e2e.fixtures_inprocess import (
    caller_transaction,
    make_worker,
    open_app,
    wait_for_event,
    wait_until,
)


@dataclass
class Step:
    name: str


@dataclass
class Out:
    value: str


ops = queuert.chain("e2e-ops", input=Step, output=Out)
second = ops.queue("second", input=Step)
idle = queuert.chain("e2e-ops-idle", input=Step, output=Out)


async def chain_status(app: queuert.Queuert[Any], chain_id: str) -> JobStatus:
    chain = await app.get_chain(chain_id)
    assert chain is not None
    return chain.status


@pytest.mark.parametrize("notify", [True, False], ids=["signalled", "heartbeat"])
async def test_cancelling_a_running_chain_cancels_its_handler(
    backend: Backend, notify: bool
) -> None:
    started = asyncio.Event()
    outcomes: list[str] = []
    acquired_until: list[datetime | None] = []
    # With the signal, the cancel comes after the first renewal (with_heartbeat renews
    # at once) and the next is far off: a renewal landing between the cancel's commit
    # and the signal's arrival would find the lease lost first (as it may on a loaded
    # machine), and the test is about the signal.
    heartbeat_ms = 9_000 if notify else 100
    async with open_app(backend, [ops, idle], notify=notify) as app:
        worker = make_worker(app, lease_ms=10_000)

        @worker.handler(ops)
        async def long_work(job: Job[Step], ctx: JobContext[Any, Out]) -> Out:
            acquired_until.append(ctx.record.leased_until)
            started.set()
            try:
                await ctx.with_heartbeat(asyncio.sleep(30), interval_ms=heartbeat_ms)
            except asyncio.CancelledError:
                outcomes.append("cancelled")
                raise
            except LeaseLostError:
                outcomes.append("lease lost")
                raise
            return Out("never")

        async with worker:
            handle = await app.enqueue_job_chain(None, ops, Step("a"))
            await wait_for_event(started, what="the handler to start")

            async def renewed() -> bool:
                record = await app.get_job(handle.id)
                assert record is not None and record.leased_until is not None
                return record.leased_until != acquired_until[0]

            await wait_until(renewed, what="the first lease renewal")
            cancelled = await app.cancel_chain(handle.id)
            assert cancelled.status is JobStatus.CANCELLED
            await wait_until(lambda: asyncio.sleep(0, outcomes), what="the handler to stop")
            await wait_until(lambda: asyncio.sleep(0, worker.active_jobs == 0), what="idle")
        # With the signal the task is cancelled; without it the next heartbeat finds out.
        assert outcomes == (["cancelled"] if notify else ["lease lost"])
        assert await chain_status(app, handle.id) is JobStatus.CANCELLED
        with pytest.raises(ChainEndedError):
            await app.cancel_chain(handle.id)
        with pytest.raises(JobNotFoundError):
            await app.cancel_chain("no-such-chain")


async def test_a_cancelled_jobs_finalize_commits_nothing(backend: Backend) -> None:
    started, proceed = asyncio.Event(), asyncio.Event()
    errors: list[BaseException] = []
    async with open_app(backend, [ops, idle], notify=False) as app:
        worker = make_worker(app, lease_ms=10_000)

        @worker.handler(ops)
        async def slow_commit(
            job: Job[Step], ctx: JobContext[Any, Out]
        ) -> Out | queuert.Continuation:
            started.set()
            await proceed.wait()

            async def commit(tx: Any, enqueue_job: Any) -> Out:
                await backend.app_write(tx, "written")
                return Out("done")

            try:
                return await ctx.finalize(commit)
            except LeaseLostError as exc:
                errors.append(exc)
                raise

        async with worker:
            handle = await app.enqueue_job_chain(None, ops, Step("a"))
            await wait_for_event(started, what="the handler to start")
            await app.cancel_chain(handle.id)
            proceed.set()
            await wait_until(lambda: asyncio.sleep(0, errors), what="finalize to fail")
        assert await backend.app_writes() == {}
        assert await chain_status(app, handle.id) is JobStatus.CANCELLED


async def test_retrying_a_failed_chain_resumes_where_it_ended(backend: Backend) -> None:
    first_runs: list[str] = []
    second_runs: list[int] = []
    async with open_app(backend, [ops, idle]) as app:
        worker = make_worker(app)

        @worker.handler(ops)
        async def first(job: Job[Step], ctx: JobContext[Any, Out]) -> queuert.Continuation:
            first_runs.append(job.input.name)
            return await ctx.continue_with(second, Step("b"))

        @worker.handler(second)
        async def flaky(job: Job[Step], ctx: JobContext[Any, Out]) -> Out:
            second_runs.append(job.attempt)
            if len(second_runs) == 1:
                raise NonRetryableError("the disk was full")
            return Out("fine")

        async with worker:
            handle = await app.enqueue_job_chain(None, ops, Step("a"))
            with pytest.raises(queuert.ChainFailedError):
                await app.wait_for_chain(handle, timeout=5)
            failed = await app.get_chain(handle.id)
            assert failed is not None and failed.error is not None
            assert "the disk was full" in failed.error.message
            with pytest.raises(JobStateError):
                await app.retry_job(handle.id)  # the first job continued the chain
            resumed = await app.retry_chain(handle.id)
            assert resumed.status is JobStatus.PENDING
            assert resumed.error is not None  # the last error stays readable
            assert await app.wait_for_chain(handle, timeout=5) == Out("fine")
            with pytest.raises(JobStateError):
                await app.retry_chain(handle.id)
    assert first_runs == ["a"]
    assert second_runs == [1, 1]  # a fresh attempt budget


async def test_retrying_a_running_chain_raises(backend: Backend) -> None:
    async with open_app(backend, [ops, idle]) as app:
        handle = await app.enqueue_job_chain(None, ops, Step("a"))
        with pytest.raises(JobStateError):
            await app.retry_chain(handle.id)
        with pytest.raises(JobNotFoundError):
            await app.retry_chain("no-such-chain")
        assert await chain_status(app, handle.id) is JobStatus.PENDING


async def test_completing_a_running_job_from_outside_revokes_its_lease(backend: Backend) -> None:
    started = asyncio.Event()
    outcomes: list[str] = []
    async with open_app(backend, [ops, idle]) as app:
        worker = make_worker(app, lease_ms=10_000)

        @worker.handler(ops)
        async def long_work(job: Job[Step], ctx: JobContext[Any, Out]) -> Out:
            started.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                outcomes.append("cancelled")
                raise
            return Out("from the worker")

        async with worker:
            handle = await app.enqueue_job_chain(None, ops, Step("a"))
            await wait_for_event(started, what="the handler to start")
            # The lease-lost signal leaves when the block exits, after the commit.
            async with app.with_notify(), caller_transaction(backend) as tx:
                await app.complete_job(tx, handle.id, output=Out("from outside"))
            await wait_until(lambda: asyncio.sleep(0, outcomes), what="the handler to stop")
            assert await app.wait_for_chain(handle, timeout=5) == Out("from outside")
        with pytest.raises(ChainEndedError):
            await app.complete_job(None, handle.id, output=Out("again"))


async def test_complete_job_validates_before_writing(backend: Backend) -> None:
    async with open_app(backend, [ops, idle]) as app:
        handle = await app.enqueue_job_chain(None, ops, Step("a"))
        with pytest.raises(InputValidationError):
            await app.complete_job(None, handle.id, output=Step("not an Out"))
        with pytest.raises(queuert.ForeignQueueError):
            await app.complete_job(None, handle.id, continue_with=(idle, Step("x")))
        with pytest.raises(ValidationError):
            await app.complete_job(None, handle.id)
        with pytest.raises(ValidationError):
            await app.complete_job(
                None, handle.id, output=Out("x"), continue_with=(second, Step("y"))
            )
        with pytest.raises(JobNotFoundError):
            await app.complete_job(None, "no-such-job", output=Out("x"))
        assert await chain_status(app, handle.id) is JobStatus.PENDING


async def test_purge_deletes_ended_chains_in_batches(backend: Backend) -> None:
    async with open_app(backend, [ops, idle]) as app:
        done = [await app.enqueue_job_chain(None, ops, Step(str(i))) for i in range(5)]
        for handle in done:
            await app.complete_job(None, handle.id, output=Out("ok"))
        kept = await app.enqueue_job_chain(None, ops, Step("open"))
        cancelled = await app.enqueue_job_chain(None, ops, Step("cancelled"))
        await app.cancel_chain(cancelled.id)
        with pytest.raises(ValidationError):
            await app.purge(ended_before=datetime(2030, 1, 1))  # naive
        with pytest.raises(ValidationError):
            await app.purge(ended_before=datetime.now(UTC), statuses=("running",))
        with pytest.raises(ValidationError):
            await app.purge(ended_before=datetime.now(UTC), batch_size=0)
        assert await app.purge(ended_before=datetime.now(UTC) - timedelta(hours=1)) == 0
        later = datetime.now(UTC) + timedelta(hours=1)
        assert await app.purge(ended_before=later, batch_size=2) == 5
        assert await app.get_chain(kept.id) is not None
        assert await app.get_chain(cancelled.id) is not None
        assert await app.purge(ended_before=later, statuses=["cancelled"]) == 1
        assert [c.id for c in (await app.list_chains()).items] == [kept.id]


async def test_a_worker_with_retention_purges_old_chains(backend: Backend) -> None:
    async with open_app(backend, [ops, idle]) as app:
        handle = await app.enqueue_job_chain(None, ops, Step("a"))
        await app.complete_job(None, handle.id, output=Out("ok"))
        plain = make_worker(app)
        plain.handler(ops)(_never)
        async with plain:
            pass
        assert await app.get_chain(handle.id) is not None  # retention is off by default
        retention = timedelta(milliseconds=10)
        ended = await app.get_chain(handle.id)
        assert ended is not None and ended.completed_at is not None
        old_enough = ended.completed_at + retention

        async def clock_passed() -> bool:  # by the store's clock, which the purge reads
            return (await app.stats()).now > old_enough

        await wait_until(clock_passed, what="the chain to be older than the retention")
        keeping = make_worker(app, retention=retention)
        keeping.handler(ops)(_never)
        async with keeping:
            await wait_until(
                lambda: _gone(app, handle.id), what="the worker to purge the ended chain"
            )
        with pytest.raises(ValidationError):
            app.worker(retention=timedelta(0))


async def _never(job: Job[Step], ctx: JobContext[Any, Out]) -> Out:
    return Out("unused")


async def _gone(app: queuert.Queuert[Any], chain_id: str) -> bool:
    return await app.get_chain(chain_id) is None


async def test_workers_explain_stats_and_listing(backend: Backend) -> None:
    async with open_app(backend, [ops, idle]) as app:
        worker = make_worker(app, concurrency=3)
        worker.handler(ops)(_never)
        later = await app.enqueue_job_chain(None, ops, Step("later"), delay=timedelta(hours=1))
        stuck = await app.enqueue_job_chain(None, idle, Step("nobody serves this"))
        async with worker:
            (record,) = await app.list_workers()
            assert record.id == worker.id and record.queues == ("e2e-ops",)
            assert record.concurrency == 3
            why = await app.explain(later.id)
            assert why.reason == "scheduled" and why.status is JobStatus.PENDING
            why = await app.explain(stuck.id)
            assert why.reason == "no_worker" and "e2e-ops-idle" in why.summary
            stats = await app.stats()
            assert stats.count("e2e-ops", "pending") == 1
            assert stats.count("e2e-ops-idle", "pending") == 1
        assert await app.list_workers() == []
        await app.cancel_chain(stuck.id)
        why = await app.explain(stuck.id)
        assert why.reason == "cancelled"
        with pytest.raises(JobNotFoundError):
            await app.explain("no-such-id")
        newest = await app.list_chains(order="newest", limit=1)
        assert [c.id for c in newest.items] == [stuck.id]
        window = await app.list_jobs(created_before=datetime(2000, 1, 1, tzinfo=UTC))
        assert window.items == []
        with pytest.raises(ValidationError):
            await app.list_jobs(order="sideways")


async def test_explain_running_waiting_and_expired_leases(backend: Backend) -> None:
    async with open_app(backend, [ops, idle]) as app:
        head = await app.enqueue_job_chain(None, ops, Step("head"))
        behind = await app.enqueue_job_chain(None, ops, Step("behind"))
        info = queuert.WorkerInfo(id="w-1", host="h", pid=1, queues=("e2e-ops",), concurrency=1)
        await app.state.record_worker(tx=None, worker=info, forget_ms=60_000)
        why = await app.explain(behind.id)
        assert why.reason == "waiting" and why.details["ahead"] == 1
        (taken,) = await app.state.acquire_jobs(
            tx=None, queues=["e2e-ops"], limit=1, owner="w-1", lease_ms=50
        )
        assert taken.id == head.id
        why = await app.explain(head.id)
        assert why.reason in ("running", "lease_expired") and why.details["leased_by"] == "w-1"

        async def expired() -> bool:
            return (await app.explain(head.id)).reason == "lease_expired"

        await wait_until(expired, what="the lease to expire")
        assert (await app.explain(behind.id)).details["ahead"] == 0


async def test_operations_validate_ids(backend: Backend) -> None:
    async with open_app(backend, [ops, idle]) as app:
        for call in (app.cancel_chain, app.retry_chain, app.retry_job, app.explain):
            with pytest.raises(ValidationError):
                await call(123)  # type: ignore[arg-type]
            with pytest.raises(ValidationError):
                await call("")
        with pytest.raises(ValidationError):
            await app.complete_job(None, "x" * 1001, output=Out("x"))
