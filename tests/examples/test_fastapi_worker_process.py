"""The FastAPI example's worker as the process the deployment files run:
``python -m examples.fastapi_app.worker`` processes what the API started and stops
on SIGTERM with exit code 0."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import httpx
import pytest

from examples.fastapi_app import settings
from examples.fastapi_app.models import Image
from examples.fastapi_app.web import create_app
from tests.e2e.backends import env_with_pythonpath
from tests.waiting import eventually


@pytest.mark.slow
async def test_the_worker_process_runs_chains_and_stops_on_sigterm(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    engine, jobs = await settings.connect(url)
    try:
        await jobs.migrate()
        async with engine.begin() as conn:
            await conn.run_sync(Image.metadata.create_all)
        env = env_with_pythonpath()
        env["DATABASE_URL"] = url
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "examples.fastapi_app.worker",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            transport = httpx.ASGITransport(app=create_app(engine, jobs))
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                response = await http.post("/images", params={"name": "a.png"}, content=b"x")
                assert response.status_code == 201, response.text
                image_id = response.json()["image_id"]

                async def completed() -> bool:
                    status = (await http.get(f"/images/{image_id}")).json()
                    return bool(status["status"] == "completed")

                await eventually(completed, timeout=30, message="the worker process did not run")
        finally:
            if worker.returncode is None:
                worker.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                _, stderr = await worker.communicate()
        assert worker.returncode == 0, stderr.decode()[-2000:]
    finally:
        await jobs.close()
        await engine.dispose()
