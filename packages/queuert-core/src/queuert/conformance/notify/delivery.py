"""Each signal reaches a subscribed listener with its payload."""

from __future__ import annotations

import pytest

from queuert.conformance.notify.signals import keys, wait_for_key
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
        queue = unique("queue")
        received: Recorder[ScheduledSignal] = Recorder()
        await notify_adapter.subscribe_job_scheduled(queues=[queue], listener=received)
        await notify_adapter.publish_job_scheduled(queue=queue, count=3)
        signal = await received.wait_for_item(lambda s: s.queue == queue, what="the signal")
        assert isinstance(signal, ScheduledSignal)
        assert signal.count == 3
        assert signal.hint is None or isinstance(signal.hint, str)

    @pytest.mark.asyncio
    async def test_chain_completed_is_delivered_with_chain_id(
        self, notify_adapter: NotifyAdapter
    ) -> None:
        chain_id = unique("chain")
        received: Recorder[str] = Recorder()
        await notify_adapter.subscribe_chain_completed(chain_id=chain_id, listener=received)
        await notify_adapter.publish_chain_completed(chain_id=chain_id)
        await wait_for_key(received, chain_id)
        assert received.items == [chain_id]

    @pytest.mark.asyncio
    async def test_lease_lost_is_delivered_with_job_id(self, notify_adapter: NotifyAdapter) -> None:
        job_id = unique("job")
        received: Recorder[str] = Recorder()
        await notify_adapter.subscribe_lease_lost(job_id=job_id, listener=received)
        await notify_adapter.publish_lease_lost(job_id=job_id)
        await wait_for_key(received, job_id)
        assert received.items == [job_id]

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
        queue = unique("queue")
        received: Recorder[ScheduledSignal] = Recorder()
        await notify_adapter.subscribe_job_scheduled(queues=[queue], listener=received)
        await notify_adapter.publish_job_scheduled(queue=queue, count=100_000)
        signal = await received.wait_for_item(lambda s: s.queue == queue, what="the signal")
        assert signal.count == 100_000
