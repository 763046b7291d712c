"""Several listeners, unsubscribing and subscribing again."""

from __future__ import annotations

import pytest

from queuert.conformance.notify.signals import (
    KINDS,
    AnyRecorder,
    keys,
    publish,
    subscribe,
    wait_for_key,
)
from queuert.conformance.support import Recorder, unique
from queuert.ports.notify import NotifyAdapter, ScheduledSignal


class SubscriptionCases:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("kind", KINDS)
    async def test_every_listener_receives_the_signal(
        self, notify_adapter: NotifyAdapter, kind: str
    ) -> None:
        key = unique(kind)
        listeners: list[AnyRecorder] = [Recorder() for _ in range(3)]
        for listener in listeners:
            await subscribe(notify_adapter, kind, key, listener)
        await publish(notify_adapter, kind, key)
        for listener in listeners:
            await wait_for_key(listener, key)
            assert keys(listener) == [key]

    @pytest.mark.asyncio
    @pytest.mark.parametrize("kind", KINDS)
    async def test_unsubscribe_stops_delivery(
        self, notify_adapter: NotifyAdapter, kind: str
    ) -> None:
        key = unique(kind)
        leaving: AnyRecorder = Recorder()
        staying: AnyRecorder = Recorder()
        subscription = await subscribe(notify_adapter, kind, key, leaving)
        await subscribe(notify_adapter, kind, key, staying)
        await publish(notify_adapter, kind, key)
        await wait_for_key(leaving, key)
        await subscription.unsubscribe()
        await publish(notify_adapter, kind, key)
        await staying.wait_for(lambda items: len(items) >= 2, what="the second signal")
        # A marker after the second signal proves it would have reached `leaving` by now.
        await publish(notify_adapter, kind, key)
        await staying.wait_for(lambda items: len(items) >= 3, what="the marker")
        assert keys(leaving) == [key]

    @pytest.mark.asyncio
    async def test_unsubscribe_is_idempotent(self, notify_adapter: NotifyAdapter) -> None:
        queue = unique("queue")
        subscription = await notify_adapter.subscribe_job_scheduled(
            queues=[queue], listener=Recorder[ScheduledSignal]()
        )
        await subscription.unsubscribe()
        await subscription.unsubscribe()

    @pytest.mark.asyncio
    async def test_subscribe_again_after_unsubscribe(self, notify_adapter: NotifyAdapter) -> None:
        chain_id = unique("chain")
        first: Recorder[str] = Recorder()
        subscription = await notify_adapter.subscribe_chain_completed(
            chain_id=chain_id, listener=first
        )
        await subscription.unsubscribe()
        second: Recorder[str] = Recorder()
        await notify_adapter.subscribe_chain_completed(chain_id=chain_id, listener=second)
        await notify_adapter.publish_chain_completed(chain_id=chain_id)
        await wait_for_key(second, chain_id)
        assert second.items == [chain_id]

    @pytest.mark.asyncio
    async def test_one_listener_on_several_subscriptions(
        self, notify_adapter: NotifyAdapter
    ) -> None:
        queue, chain_id = unique("queue"), unique("chain")
        received: AnyRecorder = Recorder()
        await notify_adapter.subscribe_job_scheduled(queues=[queue], listener=received)
        await notify_adapter.subscribe_chain_completed(chain_id=chain_id, listener=received)
        await notify_adapter.publish_job_scheduled(queue=queue, count=1)
        await notify_adapter.publish_chain_completed(chain_id=chain_id)
        await received.wait_for(lambda items: len(items) >= 2, what="both signals")
        assert sorted(keys(received)) == sorted([queue, chain_id])
