"""The instrumented notify adapter: publishing that never raises nor waits for
the transport, and wake claims that fail open."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from queuert.metrics import Metrics
from queuert.ports.notify import (
    IdListener,
    NotifyAdapter,
    ScheduledListener,
    ScheduledSignal,
    Subscription,
)
from queuert.ports.sync import SyncPublisher

notify_log = logging.getLogger("queuert.notify")


PUBLISH_TIMEOUT_S = 5.0
"""How long one publish may take before it is given up (and logged)."""

WAKE_CLAIM_TIMEOUT_S = 2.0
"""How long a wake claim may take before the worker wakes anyway."""

CLOSE_WAIT_S = 1.0
"""How long closing waits for publishes still on their way before giving them up."""

MAX_PUBLISHES_IN_FLIGHT = 1000
"""Publishes waiting on a slow transport beyond this are dropped (and counted)."""


class InstrumentedNotify(NotifyAdapter):
    """Wraps a notify adapter: publishing never raises (notifications are hints, a
    failure is logged and counted) and a failed wake claim counts as a wake.

    Publishing never waits for the transport: each publish is sent by a task of
    its own, given up after ``publish_timeout`` seconds, so that neither a job's
    slot nor the application's transaction waits on a notifier that hangs (a
    connection that silently drops packets). A wake claim taking longer than
    ``wake_timeout`` seconds counts as a wake. :meth:`close` waits up to a second
    for publishes still on their way, then gives them up."""

    def __init__(
        self,
        inner: NotifyAdapter,
        metrics: Metrics,
        *,
        publish_timeout: float = PUBLISH_TIMEOUT_S,
        wake_timeout: float = WAKE_CLAIM_TIMEOUT_S,
    ) -> None:
        self.inner = inner
        self.capabilities = inner.capabilities
        self.metrics = metrics
        self.publish_timeout = publish_timeout
        self.wake_timeout = wake_timeout
        self._sending: set[asyncio.Task[None]] = set()

    async def _publish(self, signal: str, fn: Callable[[], Awaitable[None]]) -> None:
        self.metrics.incr(f"notify.{signal}.published")
        if len(self._sending) >= MAX_PUBLISHES_IN_FLIGHT:
            self.metrics.incr(f"notify.{signal}.publish_dropped")
            notify_log.debug("publishing %s dropped: too many publishes in flight", signal)
            return
        task = asyncio.create_task(self._send(signal, fn), name=f"queuert-publish-{signal}")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, signal: str, fn: Callable[[], Awaitable[None]]) -> None:
        try:
            async with asyncio.timeout(self.publish_timeout):
                await fn()
        except Exception as exc:  # a lost hint only delays work until the next poll
            self.metrics.incr(f"notify.{signal}.publish_errors")
            if isinstance(exc, TimeoutError):
                exc = TimeoutError(f"no answer within {self.publish_timeout:g} s")
            notify_log.warning("publishing %s failed: %s", signal, exc)

    async def publish_job_scheduled(self, *, queue: str, count: int) -> None:
        await self._publish(
            "job_scheduled", lambda: self.inner.publish_job_scheduled(queue=queue, count=count)
        )

    async def publish_chain_completed(self, *, chain_id: str) -> None:
        await self._publish(
            "chain_completed", lambda: self.inner.publish_chain_completed(chain_id=chain_id)
        )

    async def publish_lease_lost(self, *, job_id: str) -> None:
        await self._publish("lease_lost", lambda: self.inner.publish_lease_lost(job_id=job_id))

    async def subscribe_job_scheduled(
        self, *, queues: Sequence[str], listener: ScheduledListener
    ) -> Subscription:
        return await self.inner.subscribe_job_scheduled(queues=queues, listener=listener)

    async def subscribe_chain_completed(
        self, *, chain_id: str | None, listener: IdListener
    ) -> Subscription:
        return await self.inner.subscribe_chain_completed(chain_id=chain_id, listener=listener)

    async def subscribe_lease_lost(
        self, *, job_id: str | None, listener: IdListener
    ) -> Subscription:
        return await self.inner.subscribe_lease_lost(job_id=job_id, listener=listener)

    async def claim_wake(self, *, signal: ScheduledSignal) -> bool:
        self.metrics.incr("notify.claim_wake.calls")
        try:
            async with asyncio.timeout(self.wake_timeout):
                won = await self.inner.claim_wake(signal=signal)
        except Exception as exc:
            notify_log.warning("claiming a wake hint failed (%s); waking anyway", exc)
            return True
        if won:
            self.metrics.incr("notify.claim_wake.won")
        return won

    async def close(self) -> None:
        sending = list(self._sending)
        if sending:
            _, late = await asyncio.wait(sending, timeout=min(self.publish_timeout, CLOSE_WAIT_S))
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        await self.inner.close()

    def sync_publisher(self) -> SyncPublisher | None:
        return self.inner.sync_publisher()
