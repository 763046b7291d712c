"""Listeners receive only what they subscribed to.

A signal that must not arrive is published before a marker the listener does
receive on the same subscription: once the marker is in, the earlier signal
would have been too.
"""

from __future__ import annotations

import pytest

from queuert.conformance.notify.signals import (
    ID_KINDS,
    KINDS,
    AnyRecorder,
    keys,
    publish,
    subscribe,
    wait_for_key,
)
from queuert.conformance.support import Recorder, unique
from queuert.ports.notify import NotifyAdapter, ScheduledSignal


class FilteringCases:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("kind", KINDS)
    async def test_only_the_subscribed_key_is_delivered(
        self, notify_adapter: NotifyAdapter, kind: str
    ) -> None:
        mine, other = unique(kind), unique(kind)
        received: AnyRecorder = Recorder()
        await subscribe(notify_adapter, kind, mine, received)
        await publish(notify_adapter, kind, other)
        await publish(notify_adapter, kind, mine)
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
    @pytest.mark.parametrize("kind", ID_KINDS)
    async def test_no_key_subscribes_to_every_key(
        self, notify_adapter: NotifyAdapter, kind: str
    ) -> None:
        first, second = unique(kind), unique(kind)
        received: AnyRecorder = Recorder()
        await subscribe(notify_adapter, kind, None, received)
        await publish(notify_adapter, kind, first)
        await publish(notify_adapter, kind, second)
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
