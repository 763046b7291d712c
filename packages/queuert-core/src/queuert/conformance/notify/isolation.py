"""A listener that raises harms neither the other listeners nor later signals."""

from __future__ import annotations

import pytest

from queuert.conformance.notify.signals import KINDS, AnyRecorder, keys, publish, subscribe
from queuert.conformance.support import Recorder, unique
from queuert.ports.notify import NotifyAdapter


class IsolationCases:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("kind", KINDS)
    async def test_failing_listener_does_not_stop_the_others(
        self, notify_adapter: NotifyAdapter, kind: str
    ) -> None:
        key = unique(kind)
        failing: AnyRecorder = Recorder(fail=True)
        healthy: AnyRecorder = Recorder()
        await subscribe(notify_adapter, kind, key, failing)
        await subscribe(notify_adapter, kind, key, healthy)
        await publish(notify_adapter, kind, key)
        await publish(notify_adapter, kind, key)
        await healthy.wait_for(lambda items: len(items) >= 2, what="both signals")
        await failing.wait_for(lambda items: len(items) >= 2, what="both signals")
        assert keys(healthy) == [key, key]

    @pytest.mark.asyncio
    async def test_failing_listener_keeps_receiving(self, notify_adapter: NotifyAdapter) -> None:
        chain_ids = [unique("chain") for _ in range(3)]
        failing: Recorder[str] = Recorder(fail=True)
        await notify_adapter.subscribe_chain_completed(chain_id=None, listener=failing)
        for chain_id in chain_ids:
            await notify_adapter.publish_chain_completed(chain_id=chain_id)
        await failing.wait_for(
            lambda items: all(chain_id in items for chain_id in chain_ids), what="every signal"
        )
