"""Reading jobs and chains back: filters, keyset pagination, continued versus
last jobs, cancelling and deleting chains."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

import queuert
from queuert import (
    ChainEndedError,
    ChainFailedError,
    ChainRecord,
    Continuation,
    EnqueueJob,
    Job,
    JobContext,
    JobNotFoundError,
    JobRecord,
    JobStatus,
    Page,
    Queuert,
)
from tests.e2e.backends import Backend
from tests.e2e.fixtures_inprocess import make_worker, open_app, wait_until

R = TypeVar("R", JobRecord, ChainRecord)


@dataclass
class Upload:
    n: int


@dataclass
class Scan:
    n: int


@dataclass
class Stored:
    n: int


uploads = queuert.chain("e2e-read-uploads", input=Upload, output=Stored)
scan = uploads.queue("scan", input=Scan)
reports = queuert.chain("e2e-read-reports", input=Upload, output=Stored)


async def walk(
    read: Callable[[str | None, int], Awaitable[Page[R]]], *, page_size: int
) -> tuple[list[R], int]:
    """Every item of a paginated listing, and how many pages it took."""
    items: list[R] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await read(cursor, page_size)
        pages += 1
        assert len(page.items) <= page_size
        items.extend(page.items)
        if page.next_cursor is None:
            return items, pages
        assert page.next_cursor == page.items[-1].id
        cursor = page.next_cursor


async def run_uploads_to_completion(app: Queuert[Any], count: int) -> list[str]:
    """Start ``count`` upload chains and run both of their steps."""
    worker = make_worker(app, concurrency=4)

    @worker.handler(uploads)
    async def first(job: Job[Upload], ctx: JobContext[Any, Stored]) -> Stored | Continuation:
        return await ctx.continue_with(scan, Scan(job.input.n))

    @worker.handler(scan)
    async def second(job: Job[Scan], ctx: JobContext[Any, Stored]) -> Stored:
        return Stored(job.input.n * 10)

    async with worker:
        handles = await app.enqueue_job_chains(None, uploads, [Upload(i) for i in range(count)])
        for handle in handles:
            await app.wait_for_chain(handle, timeout=5.0)
    return [handle.id for handle in handles]


async def test_pagination_walks_every_item_once_in_id_order(backend: Backend) -> None:
    async with open_app(backend, [uploads, reports]) as app:
        upload_ids = await run_uploads_to_completion(app, 5)
        report_handles = await app.enqueue_job_chains(None, reports, [Upload(i) for i in range(7)])
        report_ids = [h.id for h in report_handles]

        for size in (1, 3, 4, 12, 100):
            jobs, pages = await walk(
                lambda after, limit: app.list_jobs(after=after, limit=limit), page_size=size
            )
            ids = [job.id for job in jobs]
            assert ids == sorted(ids) and len(set(ids)) == len(ids) == 17
            assert pages >= -(-17 // size)

            chains, _ = await walk(
                lambda after, limit: app.list_chains(after=after, limit=limit), page_size=size
            )
            assert [c.id for c in chains] == sorted(upload_ids + report_ids)

        # Ids are time ordered: creation order is listing order.
        assert [c.id for c in chains][-7:] == report_ids

        # Filters apply across pages too.
        pending_reports, _ = await walk(
            lambda after, limit: app.list_chains(
                status=JobStatus.PENDING, chain=reports, after=after, limit=limit
            ),
            page_size=2,
        )
        assert [c.id for c in pending_reports] == report_ids
        completed, _ = await walk(
            lambda after, limit: app.list_chains(status="completed", after=after, limit=limit),
            page_size=2,
        )
        assert [c.id for c in completed] == upload_ids
        scans, _ = await walk(
            lambda after, limit: app.list_jobs(queue=scan.name, after=after, limit=limit),
            page_size=2,
        )
        assert len(scans) == 5 and {j.chain_id for j in scans} == set(upload_ids)
        assert all(j.queue == scan.name and j.position == 1 for j in scans)


async def test_filters(backend: Backend) -> None:
    async with open_app(backend, [uploads, reports]) as app:
        [done_id] = await run_uploads_to_completion(app, 1)
        waiting = await app.enqueue_job_chain(None, reports, Upload(1))

        by_chain = await app.list_jobs(chain_id=done_id)
        assert [(j.queue, j.position) for j in by_chain.items] == [
            (uploads.name, 0),
            (scan.name, 1),
        ]
        assert by_chain.next_cursor is None
        by_queue = await app.list_jobs(queue=[reports.name])
        assert [j.id for j in by_queue.items] == [waiting.id]
        by_status = await app.list_jobs(status=[JobStatus.PENDING, JobStatus.RUNNING])
        assert [j.id for j in by_status.items] == [waiting.id]
        assert (await app.list_jobs(chain_id=done_id, status="pending")).items == []
        assert (await app.list_jobs(chain_id=waiting.id, queue=scan.name)).items == []
        by_name = await app.list_chains(chain="e2e-read-uploads")
        assert [c.id for c in by_name.items] == [done_id]
        assert (await app.list_chains(chain=reports, status="completed")).items == []
        assert await app.get_job("no-such-job") is None
        assert await app.get_chain("no-such-chain") is None


async def test_continued_job_differs_from_the_last_one(backend: Backend) -> None:
    async with open_app(backend, [uploads]) as app:
        worker = make_worker(app)

        @worker.handler(uploads)
        async def first(job: Job[Upload], ctx: JobContext[Any, Stored]) -> Stored | Continuation:
            async def commit(tx: Any, enqueue_job: EnqueueJob[Stored]) -> Continuation:
                return await enqueue_job(scan, Scan(job.input.n + 1))

            return await ctx.finalize(commit)

        # Only the first step runs: the chain waits on its second job.
        async with worker:
            handle = await app.enqueue_job_chain(None, uploads, Upload(4))

            async def both_jobs() -> list[JobRecord] | None:
                jobs = (await app.list_jobs(chain_id=handle.id)).items
                return jobs if len(jobs) == 2 else None

            jobs = await wait_until(both_jobs, what="the continuation")

        head, tail = jobs
        assert head.status is JobStatus.COMPLETED and head.continued
        assert head.next_job_id == tail.id and head.output is None
        assert head.completed_at is not None
        assert tail.status is JobStatus.PENDING and not tail.continued
        assert tail.chain_id == handle.id and tail.position == 1
        assert tail.input_value() == {"n": 5}

        # The chain's status is its last job's, not its first's.
        chain = await app.get_chain(handle.id)
        assert chain is not None
        assert (chain.status, chain.last_job_id, chain.last_queue) == (
            JobStatus.PENDING,
            tail.id,
            scan.name,
        )
        assert chain.output is None and chain.completed_at is None
        assert chain.input_value() == {"n": 4}
        assert chain.created_at == head.created_at

        finisher = make_worker(app)

        @finisher.handler(scan)
        async def second(job: Job[Scan], ctx: JobContext[Any, Stored]) -> Stored:
            return Stored(job.input.n * 100)

        async with finisher:
            assert await app.wait_for_chain(handle, timeout=5.0) == Stored(500)

        last = await app.get_job(tail.id)
        chain = await app.get_chain(handle.id)
        assert last is not None and chain is not None
        assert last.output_value() == {"n": 500} and not last.continued
        assert chain.status is JobStatus.COMPLETED
        assert chain.output == last.output and chain.completed_at == last.completed_at
        head_again = await app.get_job(head.id)
        assert head_again is not None and head_again.output is None


async def test_cancel_a_pending_chain(backend: Backend) -> None:
    async with open_app(backend, [uploads, reports]) as app:
        handle = await app.enqueue_job_chain(None, reports, Upload(1))
        keep = await app.enqueue_job_chain(None, reports, Upload(2))

        cancelled = await app.cancel_chain(handle.id)
        assert cancelled.status is JobStatus.CANCELLED
        assert cancelled.completed_at is not None
        with pytest.raises(ChainFailedError) as raised:
            await app.wait_for_chain(handle, timeout=5.0)
        assert raised.value.status == "cancelled"
        job = await app.get_job(handle.id)
        assert job is not None and job.status is JobStatus.CANCELLED

        # A cancelled job is never acquired; the other chain still runs.
        worker = make_worker(app)

        @worker.handler(reports)
        async def handle_report(job: Job[Upload], ctx: JobContext[Any, Stored]) -> Stored:
            return Stored(job.input.n)

        async with worker:
            assert await app.wait_for_chain(keep, timeout=5.0) == Stored(2)
        job = await app.get_job(handle.id)
        assert job is not None and (job.status, job.attempt) == (JobStatus.CANCELLED, 0)

        # Cancelling a chain that already ended raises and changes nothing.
        with pytest.raises(ChainEndedError):
            await app.cancel_chain(keep.id)
        again = await app.get_chain(keep.id)
        assert again is not None and again.status is JobStatus.COMPLETED
        with pytest.raises(JobNotFoundError) as missing:
            await app.cancel_chain("no-such-chain")
        assert "'no-such-chain'" in str(missing.value)


async def test_delete_chains(backend: Backend) -> None:
    async with open_app(backend, [uploads, reports]) as app:
        done = await run_uploads_to_completion(app, 3)
        waiting = await app.enqueue_job_chain(None, reports, Upload(9))

        deleted = await app.delete_chains([done[0], done[1], "no-such-chain", done[0]])
        assert deleted == 2
        for chain_id in done[:2]:
            assert await app.get_chain(chain_id) is None
            assert (await app.list_jobs(chain_id=chain_id)).items == []
        remaining = await app.list_chains()
        assert [c.id for c in remaining.items] == [done[2], waiting.id]
        assert len((await app.list_jobs()).items) == 3
        assert await app.delete_chains([]) == 0
