"""``python -m queuert_dashboard``: the dashboard served on its own over a store
given by URL, read-only without credentials in the environment; an unmigrated
store is refused at start."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import queuert
from queuert_sqlite import SqliteStateAdapter
from tests.dashboard.test_browser import free_port
from tests.dashboard.test_pages import NOTES, Note
from tests.e2e.backends import env_with_pythonpath
from tests.waiting import eventually

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]


def environment() -> dict[str, str]:
    env = env_with_pythonpath()
    env.pop("QUEUERT_DASHBOARD_USER", None)
    env.pop("QUEUERT_DASHBOARD_PASSWORD", None)
    return env


async def test_serves_the_store_read_only(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    app = queuert.Queuert(state=SqliteStateAdapter(str(db)), chains=[NOTES])
    await app.migrate()
    handle = await app.enqueue_job_chain(None, NOTES, Note("served"))
    await app.close()
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "queuert_dashboard",
        "--state",
        f"sqlite:///{db}",
        "--port",
        str(port),
        cwd=REPO_ROOT,
        env=environment(),
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:

            async def up() -> bool:
                try:
                    return (await client.get("/")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(up, timeout=30, message="the dashboard answers")
            page = await client.get(f"/chains/{handle.id}")
            assert page.status_code == 200 and "served" in page.text
            assert "Read-only" in page.text
            assert (await client.get(f"/chains/{handle.id}/cancel")).status_code == 403
    finally:
        server.terminate()
        await server.wait()


def test_an_unmigrated_store_is_refused_at_start(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "queuert_dashboard", "--state", f"sqlite:///{tmp_path}/new.db"],
        cwd=REPO_ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert done.stderr.startswith("error: ") and "migrate()" in done.stderr
