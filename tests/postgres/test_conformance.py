"""The published conformance suite, run on the PostgreSQL adapters.

Every case gets a fresh schema (migrating one takes a few milliseconds) and a
unique channel prefix, so cases are independent and run in parallel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

from queuert.conformance import NotifyAdapterConformance, StateAdapterConformance
from queuert.ports.notify import NotifyAdapter
from queuert.ports.state import StateAdapter
from queuert_postgres import PostgresNotifyAdapter, PostgresStateAdapter, PostgresTx
from tests.postgres.conftest import drop_schema, unique_name
from tests.servers import require_postgres


class TestPostgresStateAdapter(StateAdapterConformance):
    @pytest_asyncio.fixture
    async def state_adapter(self) -> AsyncIterator[PostgresStateAdapter]:
        url = require_postgres()
        schema = unique_name("conf")
        adapter = await PostgresStateAdapter.connect(url, schema=schema, min_size=1, max_size=4)
        try:
            await adapter.migrate()
            yield adapter
        finally:
            await adapter.close()
            await drop_schema(url, schema)

    @pytest_asyncio.fixture
    async def second_state_adapter(
        self, state_adapter: StateAdapter[Any]
    ) -> AsyncIterator[PostgresStateAdapter]:
        assert isinstance(state_adapter, PostgresStateAdapter)
        adapter = await PostgresStateAdapter.connect(
            require_postgres(), schema=state_adapter.schema, min_size=1, max_size=4
        )
        try:
            yield adapter
        finally:
            await adapter.close()

    @pytest.fixture
    def poison_transaction(self) -> Callable[[Any], Awaitable[None]]:
        async def poison(tx: PostgresTx) -> None:
            await tx.execute("SELECT 1/0")

        return poison


class TestPostgresNotifyAdapter(NotifyAdapterConformance):
    @pytest_asyncio.fixture
    async def notify_adapter(self) -> AsyncIterator[PostgresNotifyAdapter]:
        adapter = PostgresNotifyAdapter(require_postgres(), channel_prefix=unique_name("conf"))
        try:
            yield adapter
        finally:
            await adapter.close()

    @pytest_asyncio.fixture
    async def second_notify_adapter(
        self, notify_adapter: NotifyAdapter
    ) -> AsyncIterator[PostgresNotifyAdapter]:
        assert isinstance(notify_adapter, PostgresNotifyAdapter)
        adapter = PostgresNotifyAdapter(
            require_postgres(), channel_prefix=notify_adapter.channel_prefix
        )
        try:
            yield adapter
        finally:
            await adapter.close()
