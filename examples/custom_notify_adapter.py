"""A notify adapter written outside queuert, validated by the published suite.

``BroadcastNotifyAdapter`` delivers signals between the workers of one process
through asyncio queues, without wake budgets. It is deliberately small: the
point is what a third-party adapter has to provide, and that
``queuert.conformance`` checks it (see tests/test_custom_adapter_example.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from queuert import AdapterError, NotifyAdapter, NotifyCapabilities, ScheduledSignal, Subscription

log = logging.getLogger("example.notify")

Callback = Callable[[Any], Awaitable[None]]


class _Listener(Subscription):
    """One subscription with its own inbox and task: a slow or failing listener
    never holds up the others, and signals arrive in publish order."""

    def __init__(
        self, owner: BroadcastNotifyAdapter, topic: str, keys: set[str] | None, callback: Callback
    ) -> None:
        self.owner, self.topic, self.keys, self.callback = owner, topic, keys, callback
        self.inbox: asyncio.Queue[tuple[Any] | None] = asyncio.Queue()
        self.task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while (item := await self.inbox.get()) is not None:
            try:
                await self.callback(item[0])
            except Exception:
                log.exception("notify listener failed")

    async def unsubscribe(self) -> None:
        if self in self.owner.listeners:
            self.owner.listeners.remove(self)
            self.inbox.put_nowait(None)
            await self.task


class BroadcastNotifyAdapter(NotifyAdapter):
    """In-process signals, one asyncio queue per listener, no wake hints."""

    capabilities = NotifyCapabilities(cross_process=False, wake_hints=False)

    def __init__(self) -> None:
        self.listeners: list[_Listener] = []
        self.closed = False

    def _publish(self, topic: str, key: str, payload: object) -> None:
        if self.closed:
            return
        for listener in self.listeners:
            if listener.topic == topic and (listener.keys is None or key in listener.keys):
                listener.inbox.put_nowait((payload,))

    def _subscribe(self, topic: str, keys: set[str] | None, callback: Callback) -> Subscription:
        if self.closed:
            raise AdapterError("the notify adapter is closed")
        listener = _Listener(self, topic, keys, callback)
        self.listeners.append(listener)
        return listener

    async def publish_job_scheduled(self, *, queue: str, count: int) -> None:
        self._publish("scheduled", queue, ScheduledSignal(queue=queue, count=count))

    async def publish_chain_completed(self, *, chain_id: str) -> None:
        self._publish("chain", chain_id, chain_id)

    async def publish_lease_lost(self, *, job_id: str) -> None:
        self._publish("lease", job_id, job_id)

    async def subscribe_job_scheduled(
        self, *, queues: Sequence[str], listener: Callable[[ScheduledSignal], Awaitable[None]]
    ) -> Subscription:
        return self._subscribe("scheduled", set(queues), listener)

    async def subscribe_chain_completed(
        self, *, chain_id: str | None, listener: Callable[[str], Awaitable[None]]
    ) -> Subscription:
        return self._subscribe("chain", None if chain_id is None else {chain_id}, listener)

    async def subscribe_lease_lost(
        self, *, job_id: str | None, listener: Callable[[str], Awaitable[None]]
    ) -> Subscription:
        return self._subscribe("lease", None if job_id is None else {job_id}, listener)

    async def close(self) -> None:
        self.closed = True
        for listener in list(self.listeners):
            await listener.unsubscribe()
