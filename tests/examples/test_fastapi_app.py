"""The FastAPI example against PostgreSQL and SQLite, through httpx's ASGI transport,
with its worker running in the test's process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

import queuert
from examples.fastapi_app import settings
from examples.fastapi_app.models import Image
from examples.fastapi_app.web import MAX_IMAGES_PER_NAME, create_app
from examples.fastapi_app.worker import build_worker
from tests.postgres.conftest import drop_schema, unique_name
from tests.servers import require_postgres
from tests.sessions.conftest import sqlalchemy_url
from tests.waiting import eventually

Stack = tuple[AsyncEngine, queuert.Queuert[Any]]


@pytest_asyncio.fixture(params=["postgresql", "sqlite"])
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    schema = None
    if request.param == "postgresql":
        postgres_url = require_postgres()
        schema = unique_name()
        url = sqlalchemy_url(postgres_url)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    engine, jobs = await settings.connect(url, schema=schema)
    try:
        await jobs.migrate()  # on PostgreSQL this creates the schema
        async with engine.begin() as conn:
            await conn.run_sync(Image.metadata.create_all)
        yield engine, jobs
    finally:
        await jobs.close()
        await engine.dispose()
        if schema is not None:
            await drop_schema(postgres_url, schema)


def client(stack: Stack) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(*stack))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_an_upload_is_processed_by_the_worker(stack: Stack) -> None:
    engine, jobs = stack
    async with client(stack) as http, build_worker(engine, jobs):
        response = await http.post("/images", params={"name": "cat.png"}, content=b"meow")
        assert response.status_code == 201, response.text
        image_id = response.json()["image_id"]

        async def completed() -> bool:
            status = (await http.get(f"/images/{image_id}")).json()
            return bool(status["status"] == "completed")

        await eventually(completed, timeout=20, message="the image chain did not complete")
        status = (await http.get(f"/images/{image_id}")).json()
        assert status["chain_id"] == response.json()["chain_id"]
        assert status["step"] == "fastapi-image:distribute"
        assert "https://cdn.example.com/" in status["output"]


async def test_an_upload_that_raises_after_enqueueing_leaves_neither_row_nor_chain(
    stack: Stack,
) -> None:
    engine, jobs = stack
    async with client(stack) as http:
        for _ in range(MAX_IMAGES_PER_NAME):
            response = await http.post("/images", params={"name": "dog.png"}, content=b"woof")
            assert response.status_code == 201, response.text
        refused = await http.post("/images", params={"name": "dog.png"}, content=b"woof")
        assert refused.status_code == 409, refused.text
    async with engine.connect() as conn:
        rows = await conn.scalar(select(func.count()).select_from(Image))
    assert rows == MAX_IMAGES_PER_NAME
    chains = await jobs.list_chains()
    assert len(chains.items) == MAX_IMAGES_PER_NAME


async def test_an_unknown_image_is_404(stack: Stack) -> None:
    async with client(stack) as http:
        assert (await http.get("/images/12345")).status_code == 404
