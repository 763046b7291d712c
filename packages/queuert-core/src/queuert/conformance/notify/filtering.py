"""Listeners receive only what they subscribed to.

A signal that must not arrive is published before a marker the listener does
receive on the same subscription: once the marker is in, the earlier signal
would have been too.
"""

from __future__ import annotations

import pytest

from queuert.conformance.notify.signals import keys, wait_for_key
from queuert.conformance.support import Recorder, unique
from queuert.ports.notify import NotifyAdapter, ScheduledSignal


class FilteringCases:
    @pytest.mark.asyncio
    async def test_job_scheduled_only_for_subscribed_queues(
        self, notify_adapter: NotifyAdapter
    ) -> None:
        mine, other = unique("mine"), unique("other")
        received: Recorder[ScheduledSignal] = Recorder()
        await notify_adapter.subscribe_job_scheduled(queues=[mine], listener=received)
        await notify_adapter.publish_job_scheduled(queue=other, count=1)
        await notify_adapter.publish_job_scheduled(queue=mine, count=1)
        await wait_for_key(received, mine)
        assert keys(received) == [mine]

    @pytest.mark.asyncio
    async def test_subscription_to_several_queues_receives_each(
        self, notify_adapter: NotifyAdapter
    ) -> None:
        first, second = unique("first"), unique("second")
        received: Recorder[ScheduledSignal] = Recorder()
        await notify_adapter.subscribe_job_scheduled(queues=[first, second], listener=received)
        await notify_adapter.publish_job_scheduled(queue=first, count=1)
        await notify_adapter.publish_job_scheduled(queue=second, count=2)
        await received.wait_for(lambda items: len(items) >= 2, what="both signals")
        assert sorted(keys(received)) == sorted([first, second])

    @pytest.mark.asyncio
    async def test_chain_completed_only_for_the_subscribed_chain(
        self, notify_adapter: NotifyAdapter
    ) -> None:
        mine, other = unique("chain"), unique("chain")
        received: Recorder[str] = Recorder()
        await notify_adapter.subscribe_chain_completed(chain_id=mine, listener=received)
        await notify_adapter.publish_chain_completed(chain_id=other)
        await notify_adapter.publish_chain_completed(chain_id=mine)
        await wait_for_key(received, mine)
        assert received.items == [mine]

    @pytest.mark.asyncio
    async def test_chain_completed_for_every_chain_with_none(
        self, notify_adapter: NotifyAdapter
    ) -> None:
        first, second = unique("chain"), unique("chain")
        received: Recorder[str] = Recorder()
        await notify_adapter.subscribe_chain_completed(chain_id=None, listener=received)
        await notify_adapter.publish_chain_completed(chain_id=first)
        await notify_adapter.publish_chain_completed(chain_id=second)
        await wait_for_key(received, second)
        await wait_for_key(received, first)
        ours = [item for item in received.items if item in (first, second)]
        assert ours == [first, second]

    @pytest.mark.asyncio
    async def test_lease_lost_only_for_the_subscribed_job(
        self, notify_adapter: NotifyAdapter
    ) -> None:
        mine, other = unique("job"), unique("job")
        received: Recorder[str] = Recorder()
        await notify_adapter.subscribe_lease_lost(job_id=mine, listener=received)
        await notify_adapter.publish_lease_lost(job_id=other)
        await notify_adapter.publish_lease_lost(job_id=mine)
        await wait_for_key(received, mine)
        assert received.items == [mine]

    @pytest.mark.asyncio
    async def test_lease_lost_for_every_job_with_none(self, notify_adapter: NotifyAdapter) -> None:
        first, second = unique("job"), unique("job")
        received: Recorder[str] = Recorder()
        await notify_adapter.subscribe_lease_lost(job_id=None, listener=received)
        await notify_adapter.publish_lease_lost(job_id=first)
        await notify_adapter.publish_lease_lost(job_id=second)
        await wait_for_key(received, second)
        await wait_for_key(received, first)
        ours = [item for item in received.items if item in (first, second)]
        assert ours == [first, second]

    @pytest.mark.asyncio
    async def test_signal_kinds_do_not_cross(self, notify_adapter: NotifyAdapter) -> None:
        key = unique("id")
        lease_listener: Recorder[str] = Recorder()
        chain_listener: Recorder[str] = Recorder()
        queue_listener: Recorder[ScheduledSignal] = Recorder()
        await notify_adapter.subscribe_lease_lost(job_id=key, listener=lease_listener)
        await notify_adapter.subscribe_chain_completed(chain_id=key, listener=chain_listener)
        await notify_adapter.subscribe_job_scheduled(queues=[key], listener=queue_listener)
        await notify_adapter.publish_chain_completed(chain_id=key)
        await notify_adapter.publish_lease_lost(job_id=key)
        await notify_adapter.publish_job_scheduled(queue=key, count=1)
        await wait_for_key(lease_listener, key)
        await wait_for_key(chain_listener, key)
        await wait_for_key(queue_listener, key)
        # Each publish went out after the other kinds' signals: one each proves no crossing.
        await notify_adapter.publish_lease_lost(job_id=key)
        await lease_listener.wait_for(lambda items: len(items) >= 2, what="the second marker")
        assert lease_listener.items == [key, key]
        assert chain_listener.items == [key]
        assert [signal.count for signal in queue_listener.items] == [1]
