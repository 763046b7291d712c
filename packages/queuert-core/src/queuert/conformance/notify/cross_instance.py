"""Signals published by one instance reach listeners of another on the same
transport, for adapters that declare ``cross_process``."""

from __future__ import annotations

import asyncio

import pytest

from queuert.conformance.notify.signals import (
    KINDS,
    AnyRecorder,
    keys,
    publish,
    scheduled_signal,
    subscribe,
)
from queuert.conformance.support import Recorder, unique
from queuert.ports.notify import NotifyAdapter


def _require_cross_process(adapter: NotifyAdapter) -> None:
    if not adapter.capabilities.cross_process:
        pytest.skip("adapter declares cross_process=False")


class CrossInstanceCases:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("kind", KINDS)
    async def test_signal_reaches_another_instance(
        self, notify_adapter: NotifyAdapter, second_notify_adapter: NotifyAdapter, kind: str
    ) -> None:
        _require_cross_process(notify_adapter)
        key = unique(kind)
        received: AnyRecorder = Recorder()
        await subscribe(notify_adapter, kind, key, received)
        await publish(second_notify_adapter, kind, key)
        await received.wait_for(lambda items: len(items) >= 1, what="the signal")
        assert keys(received) == [key]

    @pytest.mark.asyncio
    async def test_wake_budget_is_shared_across_instances(
        self, notify_adapter: NotifyAdapter, second_notify_adapter: NotifyAdapter
    ) -> None:
        _require_cross_process(notify_adapter)
        if not notify_adapter.capabilities.wake_hints:
            pytest.skip("adapter declares wake_hints=False")
        signal = await scheduled_signal(notify_adapter, count=2, publisher=second_notify_adapter)
        claims = await asyncio.gather(
            notify_adapter.claim_wake(signal=signal),
            second_notify_adapter.claim_wake(signal=signal),
            notify_adapter.claim_wake(signal=signal),
            second_notify_adapter.claim_wake(signal=signal),
        )
        assert claims.count(True) == 2
