"""Each signal reaches a subscribed listener with its payload."""

from __future__ import annotations

import pytest

from queuert.conformance.notify.signals import (
    ID_KINDS,
    AnyRecorder,
    keys,
    publish,
    scheduled_signal,
    subscribe,
    wait_for_key,
)
from queuert.conformance.support import Recorder, unique
from queuert.ports.notify import NotifyAdapter, ScheduledSignal

QUEUE_NAMES = {
    "plain": "plain",
    "chain_step": "process-and-distribute-image:distribute",
    "unicode": "bilder/größe ✓:step two",
}


class DeliveryCases:
    @pytest.mark.asyncio
    async def test_job_scheduled_is_delivered_with_queue_and_count(
        self, notify_adapter: NotifyAdapter
    ) -> None:
        signal = await scheduled_signal(notify_adapter, count=3)
        assert isinstance(signal, ScheduledSignal)
        assert signal.count == 3
        assert signal.hint is None or isinstance(signal.hint, str)

    @pytest.mark.asyncio
    @pytest.mark.parametrize("kind", ID_KINDS)
    async def test_id_signal_is_delivered_with_its_id(
        self, notify_adapter: NotifyAdapter, kind: str
    ) -> None:
        key = unique(kind)
        received: AnyRecorder = Recorder()
        await subscribe(notify_adapter, kind, key, received)
        await publish(notify_adapter, kind, key)
        await wait_for_key(received, key)
        assert received.items == [key]

    @pytest.mark.asyncio
    @pytest.mark.parametrize("name", list(QUEUE_NAMES.values()), ids=list(QUEUE_NAMES))
    async def test_queue_names_arrive_unchanged(
        self, notify_adapter: NotifyAdapter, name: str
    ) -> None:
        queue = f"{name}#{unique('q')}"
        received: Recorder[ScheduledSignal] = Recorder()
        await notify_adapter.subscribe_job_scheduled(queues=[queue], listener=received)
        await notify_adapter.publish_job_scheduled(queue=queue, count=1)
        await wait_for_key(received, queue)
        assert keys(received) == [queue]

    @pytest.mark.asyncio
    async def test_signals_arrive_in_publish_order(self, notify_adapter: NotifyAdapter) -> None:
        queue = unique("queue")
        received: Recorder[ScheduledSignal] = Recorder()
        await notify_adapter.subscribe_job_scheduled(queues=[queue], listener=received)
        for count in range(1, 6):
            await notify_adapter.publish_job_scheduled(queue=queue, count=count)
        await received.wait_for(lambda items: len(items) >= 5, what="five signals")
        assert [signal.count for signal in received.items] == [1, 2, 3, 4, 5]

    @pytest.mark.asyncio
    async def test_large_count_is_delivered(self, notify_adapter: NotifyAdapter) -> None:
        signal = await scheduled_signal(notify_adapter, count=100_000)
        assert signal.count == 100_000
