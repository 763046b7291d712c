"""The published conformance suite, run on the MongoDB adapters (needs
``QUEUERT_TEST_MONGODB_URL``; see tests/mongodb/server.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from queuert.conformance import NotifyAdapterConformance, StateAdapterConformance
from queuert.ports.notify import NotifyAdapter
from queuert.ports.state import StateAdapter
from queuert_mongodb import MongoNotifyAdapter, MongoStateAdapter
from tests.mongodb.server import drop_database, require_mongodb, unique_database


class TestMongoStateAdapter(StateAdapterConformance):
    @pytest_asyncio.fixture
    async def state_adapter(self) -> AsyncIterator[MongoStateAdapter]:
        url = require_mongodb()
        database = unique_database("conf")
        adapter = await MongoStateAdapter.connect(url, database=database)
        try:
            await adapter.migrate()
            yield adapter
        finally:
            await adapter.close()
            await drop_database(url, database)

    @pytest_asyncio.fixture
    async def second_state_adapter(
        self, state_adapter: StateAdapter[Any]
    ) -> AsyncIterator[MongoStateAdapter]:
        assert isinstance(state_adapter, MongoStateAdapter)
        adapter = await MongoStateAdapter.connect(
            require_mongodb(), database=state_adapter.database
        )
        try:
            yield adapter
        finally:
            await adapter.close()


class TestMongoNotifyAdapter(NotifyAdapterConformance):
    @pytest_asyncio.fixture
    async def notify_adapter(self) -> AsyncIterator[MongoNotifyAdapter]:
        url = require_mongodb()
        database = unique_database("conf")
        adapter = await MongoNotifyAdapter.connect(url, database=database)
        try:
            yield adapter
        finally:
            await adapter.close()
            await drop_database(url, database)

    @pytest_asyncio.fixture
    async def second_notify_adapter(
        self, notify_adapter: NotifyAdapter
    ) -> AsyncIterator[MongoNotifyAdapter]:
        assert isinstance(notify_adapter, MongoNotifyAdapter)
        adapter = await MongoNotifyAdapter.connect(
            require_mongodb(), database=notify_adapter.database
        )
        try:
            yield adapter
        finally:
            await adapter.close()
