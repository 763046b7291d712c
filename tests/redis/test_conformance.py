"""The published notify conformance suite on the Redis adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from queuert.conformance import NotifyAdapterConformance
from queuert.ports.notify import NotifyAdapter
from tests.redis.conftest import AdapterFactory


class TestRedisNotifyConformance(NotifyAdapterConformance):
    """Each case on a prefix of its own; both instances share it."""

    # The overrides depend on more fixtures than the base declares, which pytest
    # allows and mypy reports as an incompatible override.
    @pytest_asyncio.fixture
    async def notify_adapter(  # type: ignore[override]
        self, make_adapter: AdapterFactory
    ) -> AsyncIterator[NotifyAdapter]:
        yield await make_adapter()

    @pytest_asyncio.fixture
    async def second_notify_adapter(  # type: ignore[override]
        self, make_adapter: AdapterFactory, notify_adapter: NotifyAdapter
    ) -> AsyncIterator[NotifyAdapter]:
        # Its own connections, as another process would have, on the same prefix.
        yield await make_adapter()
