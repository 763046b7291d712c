"""Wake hints: N scheduled jobs wake about N listeners, not all of them."""

from __future__ import annotations

import asyncio

import pytest

from queuert.conformance.notify.signals import scheduled_signal
from queuert.conformance.support import Recorder, unique
from queuert.ports.notify import NotifyAdapter, ScheduledSignal


def _require_hints(adapter: NotifyAdapter) -> None:
    if not adapter.capabilities.wake_hints:
        pytest.skip("adapter declares wake_hints=False")


class WakeHintCases:
    @pytest.mark.asyncio
    async def test_exactly_count_concurrent_claims_succeed(
        self, notify_adapter: NotifyAdapter
    ) -> None:
        _require_hints(notify_adapter)
        queue = unique("queue")
        claims: list[bool] = []
        claimed = asyncio.Event()
        listeners = 6

        async def claim(signal: ScheduledSignal) -> None:
            claims.append(await notify_adapter.claim_wake(signal=signal))
            if len(claims) == listeners:
                claimed.set()

        for _ in range(listeners):
            await notify_adapter.subscribe_job_scheduled(queues=[queue], listener=claim)
        await notify_adapter.publish_job_scheduled(queue=queue, count=2)
        await asyncio.wait_for(claimed.wait(), 5)
        assert claims.count(True) == 2

    @pytest.mark.asyncio
    async def test_budget_runs_out(self, notify_adapter: NotifyAdapter) -> None:
        _require_hints(notify_adapter)
        signal = await scheduled_signal(notify_adapter, count=3)
        assert signal.hint is not None, "an adapter with wake hints sends a hint"
        results = await asyncio.gather(
            *(notify_adapter.claim_wake(signal=signal) for _ in range(5))
        )
        assert sorted(results) == [False, False, True, True, True]
        assert await notify_adapter.claim_wake(signal=signal) is False

    @pytest.mark.asyncio
    async def test_each_signal_has_its_own_budget(self, notify_adapter: NotifyAdapter) -> None:
        _require_hints(notify_adapter)
        queue = unique("queue")
        received: Recorder[ScheduledSignal] = Recorder()
        await notify_adapter.subscribe_job_scheduled(queues=[queue], listener=received)
        await notify_adapter.publish_job_scheduled(queue=queue, count=1)
        await notify_adapter.publish_job_scheduled(queue=queue, count=1)
        await received.wait_for(lambda items: len(items) >= 2, what="two signals")
        first, second = received.items
        assert first.hint != second.hint
        assert await notify_adapter.claim_wake(signal=first) is True
        assert await notify_adapter.claim_wake(signal=first) is False
        assert await notify_adapter.claim_wake(signal=second) is True

    @pytest.mark.asyncio
    async def test_signal_without_hint_may_always_wake(self, notify_adapter: NotifyAdapter) -> None:
        signal = ScheduledSignal(queue=unique("queue"), count=1, hint=None)
        assert await notify_adapter.claim_wake(signal=signal) is True
        assert await notify_adapter.claim_wake(signal=signal) is True

    @pytest.mark.asyncio
    async def test_unknown_hint_may_always_wake(self, notify_adapter: NotifyAdapter) -> None:
        signal = ScheduledSignal(queue=unique("queue"), count=1, hint=unique("no-such-hint"))
        assert await notify_adapter.claim_wake(signal=signal) is True
        assert await notify_adapter.claim_wake(signal=signal) is True

    @pytest.mark.asyncio
    async def test_without_wake_hints_every_claim_succeeds(
        self, notify_adapter: NotifyAdapter
    ) -> None:
        if notify_adapter.capabilities.wake_hints:
            pytest.skip("adapter declares wake_hints=True")
        signal = await scheduled_signal(notify_adapter, count=1)
        results = [await notify_adapter.claim_wake(signal=signal) for _ in range(3)]
        assert results == [True, True, True]
