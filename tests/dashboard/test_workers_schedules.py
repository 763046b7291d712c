"""The workers and schedules pages, and what the overview says of workers and
failures, over HTTP (ASGI in process)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest_asyncio

import queuert
from queuert import Job, JobContext, WorkerInfo, WorkerRecord
from queuert_dashboard import create_app
from queuert_dashboard.pages import alive
from tests.dashboard.test_actions import open_site
from tests.dashboard.test_pages import NOTES, Note, Site, run_notes
from tests.waiting import eventually


@pytest_asyncio.fixture
async def site() -> AsyncIterator[Site]:
    async for opened in open_site(None):
        yield opened


async def test_workers_show_their_state_and_jobs_in_flight(site: Site) -> None:
    empty = await site.client.get("/workers")
    assert empty.status_code == 200 and "No workers recorded." in empty.text
    job = await site.app.enqueue_job_chain(None, NOTES, Note("taken"))
    info = WorkerInfo(id="w-1", host="box-1", pid=4242, queues=(NOTES.name,), concurrency=3)
    await site.app.state.record_worker(tx=None, worker=info, forget_ms=300_000)
    await site.app.state.record_worker(
        tx=None, worker=WorkerInfo("w-2", "box-2", 7, (NOTES.name,), 1), forget_ms=300_000
    )
    (taken,) = await site.app.state.acquire_jobs(
        tx=None, queues=[NOTES.name], limit=1, owner="w-1", lease_ms=60_000
    )
    assert taken.id == job.id
    page = await site.client.get("/workers")
    row = re.search(r'<tr data-worker-id="w-1">(.*?)</tr>', page.text, re.S)
    assert row, page.text
    assert '<span class="status-completed">alive</span>' in row.group(1)
    assert "box-1" in row.group(1) and "4242" in row.group(1)
    assert f'/jobs/{job.id}">{NOTES.name}</a>' in row.group(1)
    other = re.search(r'<tr data-worker-id="w-2">(.*?)</tr>', page.text, re.S)
    assert other and '<span class="note">none</span>' in other.group(1)
    overview = await site.client.get("/")
    assert re.search(r'id="workers-alive">.*?<strong>2</strong>', overview.text, re.S)


async def test_workers_are_judged_alive_by_the_database_clock() -> None:
    """A database clock ten minutes behind the dashboard host's still shows a worker
    that has just recorded itself as alive."""
    behind = queuert.MemoryStateAdapter(clock=lambda: datetime.now(UTC) - timedelta(minutes=10))
    app = queuert.Queuert(state=behind, chains=[NOTES])
    await app.migrate()
    info = WorkerInfo(id="w-1", host="box-1", pid=1, queues=(NOTES.name,), concurrency=1)
    await app.state.record_worker(tx=None, worker=info, forget_ms=300_000)
    transport = httpx.ASGITransport(app=create_app(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://dash") as client:
        page = await client.get("/workers")
    await app.close()
    row = re.search(r'<tr data-worker-id="w-1">(.*?)</tr>', page.text, re.S)
    assert row and '<span class="status-completed">alive</span>' in row.group(1), page.text


def test_a_worker_not_seen_for_a_minute_is_stale() -> None:
    now = datetime.now(UTC)
    record = WorkerRecord("w", "h", 1, ("q",), 1, now - timedelta(hours=1), now)
    assert alive(record, now)
    assert not alive(record, now + timedelta(minutes=2))


async def test_the_overview_lists_recent_failures(site: Site) -> None:
    quiet = await site.client.get("/")
    assert "No failed chains." in quiet.text
    done, failed = await run_notes(site.app, ["done", "fail"])
    page = await site.client.get("/")
    failures = re.search(r'<table id="failures">(.*?)</table>', page.text, re.S)
    assert failures and f'data-chain-id="{failed}"' in failures.group(1)
    assert done not in failures.group(1)
    assert "RuntimeError: the note could not be filed" in failures.group(1)


async def test_schedules_show_their_slots_and_last_chain(site: Site) -> None:
    empty = await site.client.get("/schedules")
    assert empty.status_code == 200 and 'id="no-schedules"' in empty.text
    site.app.schedule("nightly", NOTES, cron="30 3 * * *", input=Note("n"), timezone="Europe/Paris")
    site.app.schedule("often", NOTES, every=timedelta(seconds=1), input=Note("o"))
    worker = site.app.worker(poll_interval=0.02)

    @worker.handler(NOTES)
    async def handle(job: Job[Note], ctx: JobContext[Any, Note]) -> Note:
        return job.input

    async with worker:

        async def started() -> bool:
            return any(s.last_chain_id for s in await site.app.list_schedules())

        await eventually(started, timeout=10, message="the schedule started a chain")
    page = await site.client.get("/schedules")
    nightly = re.search(r'<tr data-schedule="nightly">(.*?)</tr>', page.text, re.S)
    assert nightly and "<code>30 3 * * *</code>" in nightly.group(1)
    assert "Europe/Paris" in nightly.group(1) and "last-chain" not in nightly.group(1)
    often = re.search(r'<tr data-schedule="often">(.*?)</tr>', page.text, re.S)
    (info,) = [s for s in await site.app.list_schedules() if s.name == "often"]
    assert often and f'/chains/{info.last_chain_id}">' in often.group(1)
    assert "0:00:01" in often.group(1)
