"""Reading jobs and chains: lookups, each filter, keyset pagination."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from queuert.conformance.support import (
    StateAdapterAny,
    create_one,
    ids,
    new_job,
    next_job,
    running_job,
)
from queuert.records import (
    ChainFilter,
    ChainRecord,
    JobError,
    JobFilter,
    JobRecord,
    JobStatus,
    Page,
)

R = TypeVar("R", JobRecord, ChainRecord)


async def read_all_pages(
    read: Callable[[str | None], Awaitable[Page[R]]], *, limit: int
) -> list[list[R]]:
    """Follow ``next_cursor`` from the first page to the last; fails on a loop."""
    pages: list[list[R]] = []
    cursor: str | None = None
    while True:
        page = await read(cursor)
        assert len(page.items) <= limit
        pages.append(page.items)
        if page.next_cursor is None:
            return pages
        assert page.next_cursor != cursor, "next_cursor did not move"
        cursor = page.next_cursor
        assert len(pages) < 1_000, "pagination does not end"


async def mixed_jobs(adapter: StateAdapterAny) -> dict[str, JobRecord]:
    """One job in each status that matters for filters, in three queues."""
    failed = await running_job(adapter, new_job("a"))
    failed = await adapter.fail_job(tx=None, lease=failed.lease, error=JobError("E", "e"))
    running = await running_job(adapter, new_job("b"))
    completed = await running_job(adapter, new_job("c"))
    completed = await adapter.complete_job(tx=None, lease=completed.lease, output="1")
    pending = await create_one(adapter, new_job("a"))
    return {"pending": pending, "running": running, "completed": completed, "failed": failed}


class ReadCases:
    @pytest.mark.asyncio
    async def test_get_unknown_job_returns_none(self, state_adapter: StateAdapterAny) -> None:
        await create_one(state_adapter)
        assert await state_adapter.get_job(tx=None, job_id=new_job().id) is None

    @pytest.mark.asyncio
    async def test_list_jobs_in_id_order(self, state_adapter: StateAdapterAny) -> None:
        jobs = [new_job() for _ in range(5)]
        jobs.reverse()
        await state_adapter.create_jobs(tx=None, jobs=jobs)
        page = await state_adapter.list_jobs(tx=None, filter=JobFilter(), after=None, limit=10)
        assert ids(page.items) == sorted(job.id for job in jobs)
        assert page.next_cursor is None

    @pytest.mark.asyncio
    async def test_list_jobs_by_status(self, state_adapter: StateAdapterAny) -> None:
        jobs = await mixed_jobs(state_adapter)
        statuses = (JobStatus.PENDING, JobStatus.FAILED)
        page = await state_adapter.list_jobs(
            tx=None, filter=JobFilter(statuses=statuses), after=None, limit=10
        )
        assert ids(page.items) == sorted([jobs["pending"].id, jobs["failed"].id])
        running = await state_adapter.list_jobs(
            tx=None, filter=JobFilter(statuses=(JobStatus.RUNNING,)), after=None, limit=10
        )
        assert running.items == [jobs["running"]]

    @pytest.mark.asyncio
    async def test_list_jobs_by_queue(self, state_adapter: StateAdapterAny) -> None:
        jobs = await mixed_jobs(state_adapter)
        page = await state_adapter.list_jobs(
            tx=None, filter=JobFilter(queues=("a", "c")), after=None, limit=10
        )
        expected = [jobs["pending"].id, jobs["completed"].id, jobs["failed"].id]
        assert ids(page.items) == sorted(expected)

    @pytest.mark.asyncio
    async def test_list_jobs_by_chain(self, state_adapter: StateAdapterAny) -> None:
        first = await running_job(state_adapter)
        second = await state_adapter.continue_job(
            tx=None, lease=first.lease, next_job=next_job(first, "conformance:2")
        )
        await create_one(state_adapter)
        page = await state_adapter.list_jobs(
            tx=None, filter=JobFilter(chain_id=first.chain_id), after=None, limit=10
        )
        assert ids(page.items) == sorted([first.id, second.id])

    @pytest.mark.asyncio
    async def test_list_jobs_with_combined_filters(self, state_adapter: StateAdapterAny) -> None:
        jobs = await mixed_jobs(state_adapter)
        page = await state_adapter.list_jobs(
            tx=None,
            filter=JobFilter(statuses=(JobStatus.FAILED, JobStatus.RUNNING), queues=("a",)),
            after=None,
            limit=10,
        )
        assert page.items == [jobs["failed"]]
        none = await state_adapter.list_jobs(
            tx=None,
            filter=JobFilter(chain_id=jobs["pending"].chain_id, statuses=(JobStatus.RUNNING,)),
            after=None,
            limit=10,
        )
        assert none.items == []

    @pytest.mark.asyncio
    async def test_job_pages_have_no_gap_and_no_duplicate(
        self, state_adapter: StateAdapterAny
    ) -> None:
        created = await state_adapter.create_jobs(tx=None, jobs=[new_job() for _ in range(25)])

        async def read(cursor: str | None) -> Page[JobRecord]:
            return await state_adapter.list_jobs(
                tx=None, filter=JobFilter(), after=cursor, limit=10
            )

        pages = await read_all_pages(read, limit=10)
        assert [len(page) for page in pages] == [10, 10, 5]
        assert [job.id for page in pages for job in page] == sorted(ids(created))

    @pytest.mark.asyncio
    async def test_full_last_page_is_followed_by_an_empty_one(
        self, state_adapter: StateAdapterAny
    ) -> None:
        created = await state_adapter.create_jobs(tx=None, jobs=[new_job() for _ in range(4)])
        first = await state_adapter.list_jobs(tx=None, filter=JobFilter(), after=None, limit=2)
        second = await state_adapter.list_jobs(
            tx=None, filter=JobFilter(), after=first.next_cursor, limit=2
        )
        assert first.next_cursor == first.items[-1].id
        assert second.next_cursor == second.items[-1].id
        third = await state_adapter.list_jobs(
            tx=None, filter=JobFilter(), after=second.next_cursor, limit=2
        )
        assert third.items == [] and third.next_cursor is None
        assert ids(first.items) + ids(second.items) == sorted(ids(created))

    @pytest.mark.asyncio
    async def test_filtered_job_pages_have_no_gap(self, state_adapter: StateAdapterAny) -> None:
        jobs = [new_job("a" if n % 3 else "b") for n in range(21)]
        await state_adapter.create_jobs(tx=None, jobs=jobs)

        async def read(cursor: str | None) -> Page[JobRecord]:
            return await state_adapter.list_jobs(
                tx=None, filter=JobFilter(queues=("a",)), after=cursor, limit=4
            )

        pages = await read_all_pages(read, limit=4)
        listed = [job.id for page in pages for job in page]
        assert listed == sorted(job.id for job in jobs if job.queue == "a")

    @pytest.mark.asyncio
    async def test_list_chains_in_id_order(self, state_adapter: StateAdapterAny) -> None:
        jobs = [new_job("x") for _ in range(4)]
        jobs.reverse()
        await state_adapter.create_jobs(tx=None, jobs=jobs)
        page = await state_adapter.list_chains(tx=None, filter=ChainFilter(), after=None, limit=10)
        assert ids(page.items) == sorted(job.chain_id for job in jobs)
        assert page.next_cursor is None
        for chain in page.items:
            assert await state_adapter.get_chain(tx=None, chain_id=chain.id) == chain

    @pytest.mark.asyncio
    async def test_list_chains_by_status_of_the_last_job(
        self, state_adapter: StateAdapterAny
    ) -> None:
        continued = await running_job(state_adapter)
        await state_adapter.continue_job(
            tx=None, lease=continued.lease, next_job=next_job(continued, "conformance:2")
        )
        completed = await running_job(state_adapter)
        await state_adapter.complete_job(tx=None, lease=completed.lease, output="1")

        async def chains(*statuses: JobStatus) -> list[str]:
            page = await state_adapter.list_chains(
                tx=None, filter=ChainFilter(statuses=statuses), after=None, limit=10
            )
            return ids(page.items)

        assert await chains(JobStatus.PENDING) == [continued.chain_id]
        assert await chains(JobStatus.COMPLETED) == [completed.chain_id]
        assert await chains(JobStatus.RUNNING, JobStatus.FAILED) == []

    @pytest.mark.asyncio
    async def test_list_chains_by_name(self, state_adapter: StateAdapterAny) -> None:
        jobs = [new_job("images"), new_job("reports"), new_job("images"), new_job("mail")]
        await state_adapter.create_jobs(tx=None, jobs=jobs)
        page = await state_adapter.list_chains(
            tx=None, filter=ChainFilter(chain_names=("images", "mail")), after=None, limit=10
        )
        assert ids(page.items) == sorted(job.id for job in jobs if job.chain_name != "reports")

    @pytest.mark.asyncio
    async def test_chain_pages_have_no_gap_and_no_duplicate(
        self, state_adapter: StateAdapterAny
    ) -> None:
        created = await state_adapter.create_jobs(tx=None, jobs=[new_job() for _ in range(11)])
        # A chain with two jobs is listed once.
        first = await running_job(state_adapter, new_job("two-steps"))
        await state_adapter.continue_job(
            tx=None, lease=first.lease, next_job=next_job(first, "two-steps:2")
        )

        async def read(cursor: str | None) -> Page[ChainRecord]:
            return await state_adapter.list_chains(
                tx=None, filter=ChainFilter(), after=cursor, limit=3
            )

        pages = await read_all_pages(read, limit=3)
        listed = [chain.id for page in pages for chain in page]
        assert listed == sorted([*ids(created), first.chain_id])
