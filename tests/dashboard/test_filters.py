"""The chains page's filters over HTTP (ASGI in process): by current queue, by
creation time, by deduplication key, each kept by the keyset pagination; and a
chain's blockers and dependants on its page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import pytest_asyncio

import queuert
from queuert import ChainHandle
from queuert_dashboard import create_app
from tests.dashboard.test_pages import NOTES, Note, Site, run_notes

STEPS = queuert.chain("dash-steps", input=Note, output=Note)
REVIEW = STEPS.queue("review", input=Note)


@pytest_asyncio.fixture
async def site() -> AsyncIterator[Site]:
    app = queuert.Queuert(state=queuert.MemoryStateAdapter(), chains=[NOTES, STEPS])
    await app.migrate()
    transport = httpx.ASGITransport(app=create_app(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://dash") as client:
        yield Site(app, client)
    await app.close()


def listed(html: str) -> list[str]:
    return re.findall(r'<tr data-chain-id="([^"]+)"', html)


async def every_page(client: httpx.AsyncClient, url: str) -> tuple[list[str], list[str]]:
    """The chain ids of every page from ``url`` on, and the next-page links followed."""
    seen: list[str] = []
    links: list[str] = []
    next_url: str | None = url
    while next_url is not None:
        page = await client.get(next_url)
        assert page.status_code == 200, page.text
        seen.extend(listed(page.text))
        found = re.search(r'<a id="next" href="([^"]+)"', page.text)
        next_url = found.group(1).replace("&amp;", "&") if found else None
        if next_url is not None:
            links.append(next_url)
    return seen, links


async def in_review(site: Site, count: int) -> list[ChainHandle[Note]]:
    """``count`` chains moved on to the review queue (continued from outside)."""
    handles = []
    for n in range(count):
        handle = await site.app.enqueue_job_chain(None, STEPS, Note(f"step {n}"))
        await site.app.complete_job(None, handle.id, continue_with=(REVIEW, Note("check")))
        handles.append(handle)
    return handles


async def test_chains_are_filtered_by_current_queue_across_pages(site: Site) -> None:
    first_step = await site.app.enqueue_job_chain(None, STEPS, Note("not yet"))
    reviewed = await in_review(site, 3)
    notes = await site.app.enqueue_job_chain(None, NOTES, Note("other chain"))
    seen, links = await every_page(site.client, f"/chains?queue={REVIEW.name}&limit=2")
    assert seen == [h.id for h in reviewed]
    assert links and all(f"queue={quote(REVIEW.name)}" in link for link in links)
    page = await site.client.get("/chains", params={"queue": STEPS.name})
    assert listed(page.text) == [first_step.id]
    assert notes.id not in listed(page.text)
    # The form shows the filter it applied.
    assert f"<option selected>{STEPS.name}</option>" in page.text


async def test_chains_are_filtered_by_creation_time(site: Site) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    handles = await site.app.enqueue_job_chains(None, NOTES, [Note(str(n)) for n in range(3)])
    after = datetime.now(UTC) + timedelta(seconds=1)
    stamp = "%Y-%m-%dT%H:%M:%S"
    # As a datetime-local input sends it (read as UTC), over two pages.
    seen, links = await every_page(
        site.client,
        f"/chains?created_after={before.strftime(stamp)}&created_before={after.strftime(stamp)}"
        "&limit=2",
    )
    assert seen == [h.id for h in handles]
    assert links and all("created_after=" in link and "created_before=" in link for link in links)
    none = await site.client.get("/chains", params={"created_after": after.isoformat()})
    assert none.status_code == 200 and listed(none.text) == []
    bad = await site.client.get("/chains", params={"created_before": "<b>yesterday</b>"})
    assert bad.status_code == 400
    assert "created_before must be a date and time" in bad.text and "<b>" not in bad.text


async def test_chains_are_filtered_by_dedup_key(site: Site) -> None:
    keyed = await site.app.enqueue_job_chain(None, NOTES, Note("keyed"), dedup_key="order-7")
    await site.app.enqueue_job_chain(None, NOTES, Note("other"), dedup_key="order-8")
    await site.app.enqueue_job_chain(None, NOTES, Note("plain"))
    page = await site.client.get("/chains", params={"dedup_key": "order-7"})
    assert listed(page.text) == [keyed.id]
    assert 'name="dedup_key" value="order-7"' in page.text


async def test_a_chain_shows_its_blockers_and_its_dependants(site: Site) -> None:
    (blocker,) = await run_notes(site.app, ["done"])
    waiting_on = await site.app.enqueue_job_chain(None, NOTES, Note("first"))
    blockers = [ChainHandle(blocker, NOTES), ChainHandle(waiting_on.id, NOTES)]
    dependant = await site.app.enqueue_job_chain(None, STEPS, Note("after"), blockers=blockers)
    page = await site.client.get(f"/chains/{dependant.id}")
    assert page.status_code == 200
    shown = re.findall(r'<li data-blocker="([^"]+)">.*?class="status-([a-z]+)"', page.text, re.S)
    assert shown == [(blocker, "completed"), (waiting_on.id, "pending")]
    assert 'id="dependants"' not in page.text
    blocking = await site.client.get(f"/chains/{waiting_on.id}")
    assert re.search(
        rf'<ul id="dependants"><li><a href="[^"]*/chains/{dependant.id}">', blocking.text
    )
