"""``queuert dashboard`` and ``python -m queuert_dashboard``: the dashboard served
on its own over a store given by URL, read-only without credentials in the
environment, stopped by SIGTERM; an unmigrated store is refused at start, and a
missing dashboard distribution is one line naming the extra to install."""

from __future__ import annotations

import asyncio
import signal
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


async def test_the_queuert_command_serves_the_dashboard_until_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    app = queuert.Queuert(state=SqliteStateAdapter(str(db)), chains=[NOTES])
    await app.migrate()
    handle = await app.enqueue_job_chain(None, NOTES, Note("from the command"))
    await app.close()
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "queuert",
        "dashboard",
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
            overview = await client.get("/")
            assert 'data-queue="dash-notes"' in overview.text
            page = await client.get(f"/chains/{handle.id}")
            assert page.status_code == 200 and "from the command" in page.text
            assert "Read-only" in page.text
        server.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(server.wait(), timeout=30)
        # uvicorn shuts down, then lets the signal end the process as it would have.
        assert code in (0, -signal.SIGTERM)
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()


MISSING = """
import sys
sys.modules[{module!r}] = None  # as when it is not installed
from queuert.cli import main
sys.argv = ["queuert", "dashboard", "--state", "sqlite:///unused.db"]
main()
"""


@pytest.mark.parametrize("module", ["queuert_dashboard", "uvicorn"])
def test_without_the_dashboard_installed_the_command_names_the_extra(
    tmp_path: Path, module: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", MISSING.format(module=module)],
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: the dashboard command needs queuert-dashboard")
    assert f"({module} is not installed)" in done.stderr
    assert "pip install 'queuert-dashboard[serve]'" in done.stderr
    assert not (tmp_path / "unused.db").exists()


def test_the_command_line_does_not_import_the_dashboard() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, queuert, queuert.cli.commands; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('queuert_dashboard', 'uvicorn', 'starlette')))",
        ],
        cwd=REPO_ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
