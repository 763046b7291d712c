"""The conformance suite on the in-memory state adapter and the in-process
notify adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from queuert.adapters.memory_notify import InProcessNotifyAdapter
from queuert.adapters.memory_state import MemoryStateAdapter
from queuert.conformance import NotifyAdapterConformance, StateAdapterConformance


class TestMemoryStateAdapter(StateAdapterConformance):
    @pytest_asyncio.fixture
    async def state_adapter(self) -> AsyncIterator[MemoryStateAdapter]:
        adapter = MemoryStateAdapter()
        await adapter.migrate()
        yield adapter
        await adapter.close()


class TestInProcessNotifyAdapter(NotifyAdapterConformance):
    @pytest_asyncio.fixture
    async def notify_adapter(self) -> AsyncIterator[InProcessNotifyAdapter]:
        adapter = InProcessNotifyAdapter()
        yield adapter
        await adapter.close()
