"""The dashboard in a real browser (the system's Chromium driven by Playwright),
served by uvicorn on a free local port over SQLite and PostgreSQL stores filled
by a real worker: the overview's counts, filtering by failed, a failed chain's
traceback, retrying it from its page, and a payload holding a script that must
not run."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import socket
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import uvicorn
from playwright.async_api import Browser, async_playwright

import queuert
from queuert import ChainFailedError, Job, JobContext, Queuert
from queuert_dashboard import create_app
from tests.dashboard.test_pages import NOTES, SCRIPT, Note
from tests.e2e.backends import open_backend
from tests.servers import in_ci
from tests.waiting import eventually

pytestmark = pytest.mark.slow

OPS = "Basic " + base64.b64encode(b"ops:s3cret").decode()


def chromium() -> str:
    """The system Chromium (browser downloads are not available); skips, or fails
    under CI, when it is not installed."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path is not None:
            return path
    if in_ci():
        pytest.fail("chromium is not installed (CI=true: .ci/run installs it)", pytrace=False)
    pytest.skip("chromium is not installed")


@dataclass
class Served:
    app: Queuert[Any]
    url: str
    chains: dict[str, str]
    """Chain id by the text it was started with."""


async def fill(app: Queuert[Any], texts: list[str]) -> dict[str, str]:
    """Run one chain per text with a real worker: ``fail`` fails with a traceback,
    anything else completes."""
    worker = app.worker(poll_interval=0.02)

    @worker.handler(NOTES)
    async def handle(job: Job[Note], ctx: JobContext[Any, Note]) -> Note:
        if job.input.text == "fail":
            raise RuntimeError("the note could not be filed")
        return Note(job.input.text)

    chains = {}
    async with worker:
        for text in texts:
            handle_ = await app.enqueue_job_chain(None, NOTES, Note(text))
            chains[text] = handle_.id
            with contextlib.suppress(ChainFailedError):
                await app.wait_for_chain(handle_, timeout=20, poll_interval=0.02)
    return chains


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest_asyncio.fixture(params=["sqlite", "postgres"])
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Served]:
    async with open_backend(request.param, tmp_path) as backend:
        app = queuert.Queuert(state=backend.state, chains=[NOTES])
        chains = await fill(app, ["done", "fail", SCRIPT])
        for n in range(2):
            await app.enqueue_job_chain(None, NOTES, Note(f"waiting {n}"))
        later = await app.enqueue_job_chain(None, NOTES, Note("later"), delay=timedelta(hours=1))
        chains["later"] = later.id
        port = free_port()
        dashboard = create_app(
            app, auth=lambda request: request.headers.get("authorization") == OPS
        )
        config = uvicorn.Config(dashboard, host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        try:
            await eventually(lambda: server.started, timeout=20, message="uvicorn started")
            yield Served(app, f"http://127.0.0.1:{port}", chains)
        finally:
            server.should_exit = True
            await serving


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Browser]:
    path = chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


async def test_overview_filter_and_traceback_in_a_browser(served: Served, browser: Browser) -> None:
    page = await browser.new_page()
    await page.goto(served.url + "/")
    row = page.locator('tr[data-queue="dash-notes"]')
    assert await row.locator('td[data-status="pending"]').inner_text() == "3"
    assert await row.locator('td[data-status="completed"]').inner_text() == "2"
    assert await row.locator('td[data-status="failed"]').inner_text() == "1"

    await page.get_by_role("link", name="Chains", exact=True).click()
    await page.locator('select[name="status"]').select_option("failed")
    await page.get_by_role("button", name="Filter").click()
    rows = page.locator("#chains tr[data-chain-id]")
    assert await rows.count() == 1
    failed = served.chains["fail"]
    assert await rows.first.get_attribute("data-chain-id") == failed

    await rows.first.get_by_role("link", name=failed).click()
    assert page.url == f"{served.url}/chains/{failed}"
    assert await page.locator("#chain-status").inner_text() == "failed"
    traceback = await page.locator("pre.traceback").inner_text()
    assert traceback.startswith("Traceback (most recent call last)")
    assert "RuntimeError: the note could not be filed" in traceback


async def test_a_script_in_a_payload_shows_as_text_and_does_not_run(
    served: Served, browser: Browser
) -> None:
    page = await browser.new_page()
    chain_id = served.chains[SCRIPT]
    for path in ("/chains", f"/chains/{chain_id}", f"/jobs/{chain_id}"):
        await page.goto(served.url + path)
        assert await page.title() != "owned"
        assert SCRIPT in await page.locator("main").inner_text()


async def test_cancelling_from_the_page_needs_credentials(served: Served, browser: Browser) -> None:
    chain_id = served.chains["later"]
    anonymous = await browser.new_page()
    # Not through goto: a headless browser answers a basic-auth challenge with an error.
    refused = await anonymous.request.get(f"{served.url}/chains/{chain_id}/cancel")
    assert refused.status == 401
    refused = await anonymous.request.post(
        f"{served.url}/chains/{chain_id}/cancel", form={"csrf_token": "forged"}
    )
    assert refused.status == 401
    record = await served.app.get_chain(chain_id)
    assert record is not None and record.status.value == "pending"

    context = await browser.new_context(http_credentials={"username": "ops", "password": "s3cret"})
    page = await context.new_page()
    await page.goto(f"{served.url}/chains/{chain_id}")
    await page.locator("#cancel").click()
    await page.locator("#confirm").click()
    assert page.url == f"{served.url}/chains/{chain_id}"
    assert await page.locator("#chain-status").inner_text() == "cancelled"
    await context.close()


async def test_retrying_a_failed_chain_from_its_page_runs_it_again(
    served: Served, browser: Browser
) -> None:
    app = served.app
    runs: Counter[str] = Counter()
    worker = app.worker(poll_interval=0.02)

    @worker.handler(NOTES)
    async def handle(job: Job[Note], ctx: JobContext[Any, Note]) -> Note:
        runs[job.input.text] += 1
        if job.input.text == "flaky" and runs["flaky"] == 1:
            raise RuntimeError("the archive was offline")
        return Note(job.input.text)

    async with worker:
        flaky = await app.enqueue_job_chain(None, NOTES, Note("flaky"))
        with contextlib.suppress(ChainFailedError):
            await app.wait_for_chain(flaky, timeout=20, poll_interval=0.02)
        assert runs["flaky"] == 1

        # Without credentials the action is refused and the chain stays failed.
        anonymous = await browser.new_page()
        refused = await anonymous.request.post(
            f"{served.url}/chains/{flaky.id}/retry", form={"csrf_token": "forged"}
        )
        assert refused.status == 401
        record = await app.get_chain(flaky.id)
        assert record is not None and record.status.value == "failed"

        context = await browser.new_context(
            http_credentials={"username": "ops", "password": "s3cret"}
        )
        page = await context.new_page()
        await page.goto(served.url + "/chains")
        await page.locator('select[name="status"]').select_option("failed")
        await page.get_by_role("button", name="Filter").click()
        rows = page.locator("#chains tr[data-chain-id]")
        listed = [
            await rows.nth(n).get_attribute("data-chain-id") for n in range(await rows.count())
        ]
        assert flaky.id in listed and served.chains["done"] not in listed
        await (
            page.locator(f'#chains tr[data-chain-id="{flaky.id}"]')
            .get_by_role("link", name=flaky.id)
            .click()
        )
        assert await page.locator("#chain-status").inner_text() == "failed"
        traceback = await page.locator("pre.traceback").inner_text()
        assert "RuntimeError: the archive was offline" in traceback
        assert await page.locator("th.error-label").inner_text() == "error"

        await page.locator("#retry").click()
        await page.locator("#confirm").click()
        assert page.url == f"{served.url}/chains/{flaky.id}"

        async def shows_completed() -> bool:
            if await page.locator("#chain-status").inner_text() == "completed":
                return True
            await page.reload()
            return False

        await eventually(shows_completed, timeout=20, interval=0.1, message="the chain completed")
        assert runs["flaky"] == 2
        # The failed attempt stays readable, as what it now is.
        assert await page.locator("th.error-label").inner_text() == "last failed attempt"
        await context.close()
