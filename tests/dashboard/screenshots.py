"""Screenshots of the dashboard for the docs, over a SQLite store filled by a real
worker::

    hatch run hatch-test.py3.11:python -m tests.dashboard.screenshots docs/

writes ``dashboard-overview.png`` and ``dashboard-chain.png`` into the directory.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import uvicorn
from playwright.async_api import async_playwright

import queuert
from queuert_dashboard import create_app
from queuert_sqlite import SqliteStateAdapter
from tests.dashboard.test_browser import fill, free_port
from tests.dashboard.test_pages import NOTES, Note
from tests.waiting import eventually


async def main(target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = queuert.Queuert(state=SqliteStateAdapter(f"{tmp}/jobs.db"), chains=[NOTES])
        await app.migrate()
        chains = await fill(app, ["invoice 1041", "fail", "invoice 1042"])
        for n in range(3):
            await app.enqueue_job_chain(None, NOTES, Note(f"invoice {1043 + n}"))
        port = free_port()
        server = uvicorn.Server(
            # Actions allowed to every request, so that the chain page shows them.
            uvicorn.Config(
                create_app(app, auth=lambda request: True),
                host="127.0.0.1",
                port=port,
                log_level="warning",
            )
        )
        serving = asyncio.create_task(server.serve())
        await eventually(lambda: server.started, timeout=20, message="uvicorn started")
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path="/usr/bin/chromium", args=["--no-sandbox"]
                )
                page = await browser.new_page(viewport={"width": 1100, "height": 560})
                await page.goto(f"http://127.0.0.1:{port}/")
                await page.screenshot(path=target / "dashboard-overview.png", full_page=True)
                await page.goto(f"http://127.0.0.1:{port}/chains/{chains['fail']}")
                await page.screenshot(path=target / "dashboard-chain.png", full_page=True)
                await browser.close()
        finally:
            server.should_exit = True
            await serving
            await app.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
