"""The custom adapter of docs/guides/custom-adapter.md passes the published suite,
run exactly the way a third party would run it."""

from __future__ import annotations

# --8<-- [start:suite]
from collections.abc import AsyncIterator

import pytest_asyncio

from examples.custom_notify_adapter import BroadcastNotifyAdapter
from queuert.conformance import NotifyAdapterConformance


class TestBroadcastNotifyAdapter(NotifyAdapterConformance):
    @pytest_asyncio.fixture
    async def notify_adapter(self) -> AsyncIterator[BroadcastNotifyAdapter]:
        adapter = BroadcastNotifyAdapter()
        yield adapter
        await adapter.close()


# --8<-- [end:suite]
