from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.e2e.backends import BACKENDS, Backend, open_backend


@pytest_asyncio.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A fresh migrated store per test, on each backend in turn."""
    async with open_backend(request.param, tmp_path) as b:
        yield b


@pytest_asyncio.fixture(params=[name for name in BACKENDS if name != "memory"])
async def shared_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A fresh store that several processes can open (SQLite file, PostgreSQL schema)."""
    async with open_backend(request.param, tmp_path) as b:
        yield b
