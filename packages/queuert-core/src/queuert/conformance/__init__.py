"""The conformance suite: the port contracts as pytest cases, for adapter authors.

Install ``queuert-core[conformance]`` (pytest and pytest-asyncio), subclass the
base class for your port in a ``Test...`` class and override the one fixture
that yields your adapter. Every case then runs against it::

    import pytest_asyncio
    from queuert.conformance import NotifyAdapterConformance, StateAdapterConformance

    class TestMyStateAdapter(StateAdapterConformance):
        @pytest_asyncio.fixture
        async def state_adapter(self):
            adapter = MyStateAdapter(dsn=...)   # an empty store for each case
            await adapter.migrate()
            yield adapter
            await adapter.close()

    class TestMyNotifyAdapter(NotifyAdapterConformance):
        @pytest_asyncio.fixture
        async def notify_adapter(self):
            adapter = MyNotifyAdapter(url=...)
            yield adapter
            await adapter.close()

Optional hooks, each a fixture you may override:

- ``poison_transaction``: an async callable ``(tx) -> None`` that makes the
  database fail a statement inside ``tx`` (for example ``SELECT 1/0``); the
  savepoint cases use it. The default raises :class:`RuntimeError`.
- ``second_state_adapter``: a second adapter on the same store through its own
  connection or pool, as another worker process would have. Defaults to
  ``state_adapter`` itself.
- ``second_notify_adapter``: a second instance on the same transport; the
  cross-instance cases run when the adapter declares ``cross_process``.

The base classes are not collected on their own (no ``Test`` prefix). Each case
is independent and marked ``asyncio`` explicitly, so the suite runs in
pytest-asyncio's strict mode too; cases run in a per-test event loop unless you
set ``asyncio_default_test_loop_scope``. Cases that an adapter's declared
capabilities rule out (``row_locks``, ``concurrent_transactions``,
``savepoints``, ``cross_process``, ``wake_hints``, ``concurrency_limits``,
``schedules``) are skipped with the capability named; nothing else is skipped.
"""

from queuert.conformance.notify import NotifyAdapterConformance, NotifyAdapterFixtures
from queuert.conformance.state import (
    PoisonTransaction,
    StateAdapterConformance,
    StateAdapterFixtures,
)

__all__ = [
    "NotifyAdapterConformance",
    "NotifyAdapterFixtures",
    "PoisonTransaction",
    "StateAdapterConformance",
    "StateAdapterFixtures",
]
