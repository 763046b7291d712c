"""The fixtures a third party overrides to run the notify cases on its adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from queuert.ports.notify import NotifyAdapter


def _missing(name: str) -> NotifyAdapter:
    pytest.fail(
        f"override the `{name}` fixture: an async fixture that yields a notify adapter",
        pytrace=False,
    )


class NotifyAdapterFixtures:
    """Fixtures of the notify cases. Override :meth:`notify_adapter`;
    :meth:`second_notify_adapter` is an optional hook."""

    @pytest_asyncio.fixture
    async def notify_adapter(self) -> AsyncIterator[NotifyAdapter]:
        """Yield a ready notify adapter, and close it after."""
        yield _missing("notify_adapter")

    @pytest_asyncio.fixture
    async def second_notify_adapter(
        self, notify_adapter: NotifyAdapter
    ) -> AsyncIterator[NotifyAdapter]:
        """A second instance on the same transport (another connection, as another
        process would have), used for cross-instance delivery when the adapter is
        ``cross_process``. Defaults to the same instance."""
        yield notify_adapter
