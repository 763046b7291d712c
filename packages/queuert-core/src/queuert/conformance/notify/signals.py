"""The three signals behind one interface, so a case can run on each kind."""

from __future__ import annotations

from typing import Any

from queuert.conformance.support import Recorder, unique
from queuert.ports.notify import NotifyAdapter, ScheduledSignal, Subscription

KINDS = ("job_scheduled", "chain_completed", "lease_lost")
"""Signal kinds: the key is a queue name, a chain id and a job id respectively."""

ID_KINDS = ("chain_completed", "lease_lost")
"""The kinds keyed by an id, whose subscriptions may name no key to hear every one."""

AnyRecorder = Recorder[Any]


async def subscribe(
    adapter: NotifyAdapter, kind: str, key: str | None, listener: AnyRecorder
) -> Subscription:
    """Subscribe ``listener`` to ``kind`` signals for ``key`` (``None``: every key;
    job-scheduled subscriptions always name their queue)."""
    if kind == "job_scheduled":
        assert key is not None, "job-scheduled subscriptions name their queues"
        return await adapter.subscribe_job_scheduled(queues=[key], listener=listener)
    if kind == "chain_completed":
        return await adapter.subscribe_chain_completed(chain_id=key, listener=listener)
    return await adapter.subscribe_lease_lost(job_id=key, listener=listener)


async def publish(adapter: NotifyAdapter, kind: str, key: str, count: int = 1) -> None:
    if kind == "job_scheduled":
        await adapter.publish_job_scheduled(queue=key, count=count)
    elif kind == "chain_completed":
        await adapter.publish_chain_completed(chain_id=key)
    else:
        await adapter.publish_lease_lost(job_id=key)


def key_of(item: ScheduledSignal | str) -> str:
    """The queue of a job-scheduled signal, or the id another signal carries."""
    return item.queue if isinstance(item, ScheduledSignal) else item


def keys(recorder: AnyRecorder) -> list[str]:
    return [key_of(item) for item in recorder.items]


async def wait_for_key(recorder: AnyRecorder, key: str) -> None:
    await recorder.wait_for(lambda items: key in [key_of(item) for item in items], what=key)


async def scheduled_signal(
    subscriber: NotifyAdapter, *, count: int, publisher: NotifyAdapter | None = None
) -> ScheduledSignal:
    """Subscribe to a queue no other case uses on ``subscriber``, publish ``count``
    jobs for it on ``publisher`` (default: ``subscriber``) and return the signal
    as the listener received it."""
    queue = unique("queue")
    received: Recorder[ScheduledSignal] = Recorder()
    await subscriber.subscribe_job_scheduled(queues=[queue], listener=received)
    await (publisher or subscriber).publish_job_scheduled(queue=queue, count=count)
    return await received.wait_for_item(lambda s: s.queue == queue, what="the signal")
