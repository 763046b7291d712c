"""Fixtures for the SQLite adapter: a fresh database file per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from queuert_sqlite import SqliteStateAdapter


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "jobs.db")


@pytest.fixture
async def adapter(db_path: str) -> AsyncIterator[SqliteStateAdapter]:
    state = SqliteStateAdapter(db_path)
    await state.migrate()
    try:
        yield state
    finally:
        await state.close()
