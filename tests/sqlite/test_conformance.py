"""The published state adapter conformance suite on SQLite: a database file per case."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
import pytest_asyncio

from queuert.conformance import PoisonTransaction, StateAdapterConformance
from queuert.ports import StateAdapter
from queuert_sqlite import SqliteStateAdapter


class TestSqliteStateAdapter(StateAdapterConformance):
    @pytest_asyncio.fixture
    async def state_adapter(  # type: ignore[override]  # pytest passes tmp_path
        self, tmp_path: Path
    ) -> AsyncIterator[SqliteStateAdapter]:
        adapter = SqliteStateAdapter(tmp_path / "conformance.db")
        await adapter.migrate()
        try:
            yield adapter
        finally:
            await adapter.close()

    @pytest_asyncio.fixture
    async def second_state_adapter(
        self, state_adapter: StateAdapter[Any]
    ) -> AsyncIterator[SqliteStateAdapter]:
        # Its own connections and its own turn-taking, as a second worker process has.
        assert isinstance(state_adapter, SqliteStateAdapter)
        adapter = SqliteStateAdapter(state_adapter.path)
        try:
            yield adapter
        finally:
            await adapter.close()

    @pytest.fixture
    def poison_transaction(self) -> PoisonTransaction:
        async def poison(tx: aiosqlite.Connection) -> None:
            await tx.execute("THIS IS NOT SQL")

        return poison
