"""The dashboard's pages over HTTP (ASGI in process): counts, filters, keyset
pagination, a chain's jobs with their traceback, escaping of the application's
values, and refusals of bad or unknown ids."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.routing import Mount

import queuert
from queuert import ChainFailedError, Job, JobContext, Queuert, RetryPolicy, ValidationError
from queuert_dashboard import create_app


@dataclass
class Note:
    text: str


NOTES = queuert.chain(
    "dash-notes",
    input=Note,
    output=Note,
    retry=RetryPolicy(max_attempts=1),
)
SCRIPT = "<script>document.title='owned'</script>"


@dataclass
class Site:
    app: Queuert[Any]
    client: httpx.AsyncClient


@pytest_asyncio.fixture
async def site() -> AsyncIterator[Site]:
    app = queuert.Queuert(state=queuert.MemoryStateAdapter(), chains=[NOTES])
    await app.migrate()
    transport = httpx.ASGITransport(app=create_app(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://dash") as client:
        yield Site(app, client)
    await app.close()


async def run_notes(app: Queuert[Any], texts: list[str]) -> list[str]:
    """Run one chain per text: ``fail`` raises, anything else completes."""
    worker = app.worker(poll_interval=0.02)

    @worker.handler(NOTES)
    async def handle(job: Job[Note], ctx: JobContext[Any, Note]) -> Note:
        if job.input.text == "fail":
            raise RuntimeError("the note could not be filed")
        return Note(job.input.text.upper())

    ids = []
    async with worker:
        for text in texts:
            handle_ = await app.enqueue_job_chain(None, NOTES, Note(text))
            ids.append(handle_.id)
            with contextlib.suppress(ChainFailedError):
                await app.wait_for_chain(handle_, timeout=10, poll_interval=0.02)
    return ids


def cell(html: str, row_attr: str, status: str) -> str:
    found = re.search(
        rf'<tr {row_attr}>.*?data-status="{status}">(?:<a [^>]*>)?([^<]*)<', html, re.S
    )
    assert found, f"no {status} cell in the row {row_attr}"
    return found.group(1)


async def test_overview_counts_jobs_by_queue_and_status(site: Site) -> None:
    await run_notes(site.app, ["done", "fail"])
    for n in range(3):
        await site.app.enqueue_job_chain(None, NOTES, Note(f"waiting {n}"))
    page = await site.client.get("/")
    assert page.status_code == 200
    row = 'data-queue="dash-notes"'
    assert (cell(page.text, row, "pending"), cell(page.text, row, "completed")) == ("3", "1")
    assert cell(page.text, row, "failed") == "1"
    assert cell(page.text, 'id="totals"', "pending") == "3"
    waited = re.search(
        r'<tr data-queue="dash-notes">.*?<td class="n waited">([^<]*)</td>', page.text, re.S
    )
    assert waited and re.fullmatch(r"\d+ s", waited.group(1)), waited


async def test_filtering_chains_by_failed_shows_only_the_failed_chain(site: Site) -> None:
    done, failed = await run_notes(site.app, ["done", "fail"])
    page = await site.client.get("/chains", params={"status": "failed"})
    assert page.status_code == 200
    assert f'data-chain-id="{failed}"' in page.text
    assert f'data-chain-id="{done}"' not in page.text


async def test_chains_are_paged_by_keyset(site: Site) -> None:
    handles = await site.app.enqueue_job_chains(None, NOTES, [Note(str(n)) for n in range(5)])
    seen: list[str] = []
    url: str | None = "/chains?limit=2"
    while url is not None:
        page = await site.client.get(url)
        assert page.status_code == 200
        seen.extend(re.findall(r'data-chain-id="([^"]+)"', page.text))
        found = re.search(r'<a id="next" href="([^"]+)"', page.text)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert seen == sorted(h.id for h in handles)


async def test_a_chain_shows_its_error_and_traceback(site: Site) -> None:
    (failed,) = await run_notes(site.app, ["fail"])
    page = await site.client.get(f"/chains/{failed}")
    assert page.status_code == 200
    assert 'id="chain-status" class="status-failed"' in page.text
    assert "the note could not be filed" in page.text
    assert re.search(r'<pre class="traceback">Traceback \(most recent call last\)', page.text)


async def test_values_are_escaped_everywhere(site: Site) -> None:
    (chain_id,) = await run_notes(site.app, [SCRIPT])
    pages = [
        await site.client.get(path)
        for path in ("/chains", f"/chains/{chain_id}", f"/jobs/{chain_id}")
    ]
    for page in pages:
        assert page.status_code == 200
        assert "&lt;script&gt;" in page.text or "&lt;SCRIPT&gt;" in page.text
        assert "<script>" not in page.text.lower()


async def test_long_values_are_cut_with_a_link_to_the_full_value(site: Site) -> None:
    handle = await site.app.enqueue_job_chain(None, NOTES, Note("x" * 5_000))
    chain_page = await site.client.get(f"/chains/{handle.id}")
    assert "x" * 5_000 not in chain_page.text
    assert f'href="http://dash/jobs/{handle.id}">full input</a>' in chain_page.text
    job_page = await site.client.get(f"/jobs/{handle.id}")
    assert "x" * 5_000 in job_page.text


async def test_jobs_are_filtered_by_queue_and_status(site: Site) -> None:
    done, failed = await run_notes(site.app, ["done", "fail"])
    page = await site.client.get("/jobs", params={"status": "completed", "queue": NOTES.name})
    assert f'data-job-id="{done}"' in page.text
    assert f'data-job-id="{failed}"' not in page.text


async def test_unknown_ids_and_bad_filters_are_refused(site: Site) -> None:
    assert (await site.client.get("/chains/nope")).status_code == 404
    assert (await site.client.get("/jobs/nope")).status_code == 404
    bad = await site.client.get("/chains", params={"status": "<b>lost</b>"})
    assert bad.status_code == 400
    assert "unknown job status" in bad.text and "<b>" not in bad.text
    assert (await site.client.get("/jobs", params={"limit": "many"})).status_code == 400
    found = await site.client.get("/chains", params={"id": "abc"})
    assert found.status_code == 303 and found.headers["location"].endswith("/chains/abc")


def test_create_app_refuses_what_is_not_an_application() -> None:
    with pytest.raises(ValidationError, match="Queuert application"):
        create_app("app")  # type: ignore[arg-type]


async def test_mounted_under_a_prefix_its_links_keep_the_prefix(site: Site) -> None:
    handle = await site.app.enqueue_job_chain(None, NOTES, Note("mounted"))
    parent = Starlette(routes=[Mount("/queuert", app=create_app(site.app))])
    transport = httpx.ASGITransport(app=parent)
    async with httpx.AsyncClient(transport=transport, base_url="http://main") as client:
        page = await client.get("/queuert/chains")
        assert page.status_code == 200
        assert f'href="http://main/queuert/chains/{handle.id}"' in page.text
        assert (await client.get(f"/queuert/chains/{handle.id}")).status_code == 200


async def test_each_job_says_why_it_is_not_running(site: Site) -> None:
    failed, done = await run_notes(site.app, ["fail", "done"])
    later = await site.app.enqueue_job_chain(None, NOTES, Note("later"), delay=timedelta(hours=2))
    waiting = await site.app.enqueue_job_chain(None, NOTES, Note("now"))
    expected = {
        failed: "Failed for good after attempt 1 of 1: builtins.RuntimeError: the note could",
        done: "Completed: its output is the chain&#39;s output.",
        later.id: "(scheduled; not eligible yet)",
        waiting.id: "waiting for a worker that handles the queue &#39;dash-notes&#39;",
    }
    for chain_id, sentence in expected.items():
        for path in (f"/chains/{chain_id}", f"/jobs/{chain_id}"):
            page = await site.client.get(path)
            found = re.search(r'<p class="explanation">([^<]*)</p>', page.text)
            assert found and sentence in found.group(1), (path, found and found.group(1))


async def test_pages_reload_themselves_when_asked(site: Site) -> None:
    page = await site.client.get("/chains", params={"status": "failed"})
    assert 'http-equiv="refresh"' not in page.text
    link = re.search(r'id="auto-refresh" href="([^"]+)"', page.text)
    assert link and link.group(1) == "http://dash/chains?status=failed&amp;refresh=5"
    refreshing = await site.client.get("/chains", params={"status": "failed", "refresh": "5"})
    assert '<meta http-equiv="refresh" content="5">' in refreshing.text
    assert 'id="stop-refresh" href="http://dash/chains?status=failed"' in refreshing.text
    for bad in ("0", "abc", "99999"):
        assert (await site.client.get("/", params={"refresh": bad})).status_code == 400
