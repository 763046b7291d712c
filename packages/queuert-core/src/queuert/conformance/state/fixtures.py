"""The fixtures a third party overrides to run the state cases on its adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

from queuert.ports.state import StateAdapter

PoisonTransaction = Callable[[Any], Awaitable[None]]
"""Makes the driver fail a statement inside the given transaction."""


def _missing(name: str) -> StateAdapter[Any]:
    pytest.fail(
        f"override the `{name}` fixture: an async fixture that yields a migrated, empty "
        "state adapter",
        pytrace=False,
    )


class StateAdapterFixtures:
    """Fixtures of the state cases. Override :meth:`state_adapter`; the others
    are optional hooks with working defaults."""

    @pytest_asyncio.fixture
    async def state_adapter(self) -> AsyncIterator[StateAdapter[Any]]:
        """Yield a migrated state adapter over an empty store, and clean up after."""
        yield _missing("state_adapter")

    @pytest_asyncio.fixture
    async def second_state_adapter(
        self, state_adapter: StateAdapter[Any]
    ) -> AsyncIterator[StateAdapter[Any]]:
        """A second adapter on the same store (its own connection or pool), the way
        a second worker process sees it. Defaults to the same instance."""
        yield state_adapter

    @pytest.fixture
    def poison_transaction(self) -> PoisonTransaction:
        """An async callable ``(tx) -> None`` that makes the database fail a
        statement inside ``tx`` (for example invalid SQL). The default raises
        :class:`RuntimeError` without touching the database."""

        async def poison(tx: Any) -> None:
            raise RuntimeError("statement failed on purpose")

        return poison
