"""The in-process notify adapter: the reference implementation of the notify port.

Signals reach only listeners of the same adapter instance in the same event
loop (``cross_process`` is false). Each subscription has its own delivery
queue, drained by a task of its own: publishing never runs a listener inline,
a listener sees signals in publish order, one at a time, and a slow or failing
listener does not hold up the others. A listener's exception is logged on the
``queuert.notify`` logger and delivery goes on.

Wake hints (``wake_hints`` is true): every job-scheduled signal that reaches at
least one listener carries a hint whose budget is the signal's count;
:meth:`InProcessNotifyAdapter.claim_wake` spends one unit per call while any is
left. Hints are forgotten ``hint_ttl_s`` seconds after their signal, after which
a claim says ``True`` again, as it does for a signal without a hint.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from itertools import count as counter
from typing import Generic, TypeVar
from urllib.parse import urlsplit

from queuert.errors import AdapterError, ConfigurationError
from queuert.ports.notify import (
    IdListener,
    NotifyAdapter,
    NotifyCapabilities,
    ScheduledListener,
    ScheduledSignal,
    Subscription,
)

__all__ = ["InProcessNotifyAdapter", "from_url"]

logger = logging.getLogger("queuert.notify")

S = TypeVar("S", ScheduledSignal, str)

_SCHEMES = ("memory", "inprocess")


class _Stop:
    """Queued behind pending deliveries to end a subscription's delivery task."""


_STOP = _Stop()


class _Subscription(Subscription, Generic[S]):
    """One listener, the keys it listens to, and its delivery queue."""

    def __init__(
        self,
        adapter: InProcessNotifyAdapter,
        channel: dict[str | None, list[_Subscription[S]]],
        keys: tuple[str | None, ...],
        listener: object,
        kind: str,
    ) -> None:
        self._adapter = adapter
        self._channel: dict[str | None, list[_Subscription[S]]] = channel
        self._keys = keys
        self._listener = listener
        self._kind = kind
        self._queue: asyncio.Queue[S | _Stop] = asyncio.Queue()
        self.active = True
        for key in keys:
            channel.setdefault(key, []).append(self)
        self._task = asyncio.get_running_loop().create_task(
            self._deliver(), name=f"queuert-notify-{kind}"
        )

    def offer(self, value: S) -> None:
        self._queue.put_nowait(value)

    async def _deliver(self) -> None:
        while True:
            value = await self._queue.get()
            if isinstance(value, _Stop) or not self.active:
                return
            try:
                await self._listener(value)  # type: ignore[operator]
            except Exception:
                logger.exception("%s listener %r raised on %r", self._kind, self._listener, value)

    def _detach(self) -> None:
        if not self.active:
            return
        self.active = False
        self._adapter._subscriptions.discard(self)
        for key in self._keys:
            listeners = self._channel.get(key)
            if listeners is not None and self in listeners:
                listeners.remove(self)
                if not listeners:
                    del self._channel[key]
        self._queue.put_nowait(_STOP)

    async def unsubscribe(self) -> None:
        """Stop delivering to the listener; a call already running finishes.
        Idempotent, and harmless after the adapter closed."""
        self._detach()

    async def _stop(self) -> None:
        self._detach()
        if self._task is not asyncio.current_task():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class InProcessNotifyAdapter(NotifyAdapter):
    """Delivers signals to listeners in this process, with wake hints.

    After :meth:`close`, publishing does nothing and subscribing raises
    :class:`~queuert.errors.AdapterError`.
    """

    capabilities = NotifyCapabilities(cross_process=False, wake_hints=True)

    def __init__(self, *, hint_ttl_s: float = 10.0) -> None:
        self._hint_ttl_s = hint_ttl_s
        self._scheduled: dict[str | None, list[_Subscription[ScheduledSignal]]] = {}
        self._completed: dict[str | None, list[_Subscription[str]]] = {}
        self._lease_lost: dict[str | None, list[_Subscription[str]]] = {}
        self._subscriptions: set[_Subscription[ScheduledSignal] | _Subscription[str]] = set()
        # Insertion ordered, so the oldest hints are at the front when pruning.
        self._hints: dict[str, list[float]] = {}
        self._hint_ids = counter(1)
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    # -- publishing ------------------------------------------------------------

    async def publish_job_scheduled(self, *, queue: str, count: int) -> None:
        if self._closed:
            return
        listeners = self._scheduled.get(queue)
        if not listeners:
            return
        self._prune_hints()
        hint = f"{next(self._hint_ids)}"
        self._hints[hint] = [float(max(count, 0)), time.monotonic() + self._hint_ttl_s]
        signal = ScheduledSignal(queue=queue, count=count, hint=hint)
        for subscription in listeners:
            subscription.offer(signal)

    async def publish_chain_completed(self, *, chain_id: str) -> None:
        self._publish(self._completed, chain_id)

    async def publish_lease_lost(self, *, job_id: str) -> None:
        self._publish(self._lease_lost, job_id)

    def _publish(self, channel: dict[str | None, list[_Subscription[str]]], key: str) -> None:
        if self._closed:
            return
        for subscription in channel.get(key, ()):
            subscription.offer(key)
        for subscription in channel.get(None, ()):
            subscription.offer(key)

    # -- subscribing -----------------------------------------------------------

    async def subscribe_job_scheduled(
        self, *, queues: Sequence[str], listener: ScheduledListener
    ) -> Subscription:
        self._require_open()
        keys = tuple(dict.fromkeys(queues))
        return self._track(_Subscription(self, self._scheduled, keys, listener, "job-scheduled"))

    async def subscribe_chain_completed(
        self, *, chain_id: str | None, listener: IdListener
    ) -> Subscription:
        self._require_open()
        return self._track(
            _Subscription(self, self._completed, (chain_id,), listener, "chain-completed")
        )

    async def subscribe_lease_lost(
        self, *, job_id: str | None, listener: IdListener
    ) -> Subscription:
        self._require_open()
        return self._track(_Subscription(self, self._lease_lost, (job_id,), listener, "lease-lost"))

    def _track(self, subscription: _Subscription[S]) -> _Subscription[S]:
        self._subscriptions.add(subscription)
        return subscription

    def _require_open(self) -> None:
        if self._closed:
            raise AdapterError("the in-process notify adapter is closed")

    # -- wake hints ------------------------------------------------------------

    async def claim_wake(self, *, signal: ScheduledSignal) -> bool:
        """Spend one unit of the signal's budget: ``True`` while some is left,
        ``False`` after; ``True`` for a signal without a (live) hint."""
        if signal.hint is None:
            return True
        entry = self._hints.get(signal.hint)
        if entry is None or entry[1] < time.monotonic():
            return True
        if entry[0] <= 0:
            return False
        entry[0] -= 1
        return True

    def _prune_hints(self) -> None:
        now = time.monotonic()
        hints = self._hints
        while hints:
            oldest = next(iter(hints))
            if hints[oldest][1] >= now:
                break
            del hints[oldest]

    # -- closing -----------------------------------------------------------------

    async def close(self) -> None:
        """Stop every subscription (a listener call in flight is cancelled) and
        forget the hints. Idempotent."""
        if self._closed:
            return
        self._closed = True
        subscriptions = list(self._subscriptions)
        self._subscriptions.clear()
        self._hints.clear()
        await asyncio.gather(*(subscription._stop() for subscription in subscriptions))


async def from_url(url: str) -> InProcessNotifyAdapter:
    """Build an :class:`InProcessNotifyAdapter` from ``memory://`` or ``inprocess://``
    (any name after the scheme is accepted). Each call makes a separate bus.

    Raises :class:`~queuert.errors.ConfigurationError` naming ``url`` for any
    other scheme.
    """
    if urlsplit(url).scheme.lower() not in _SCHEMES or "://" not in url:
        raise ConfigurationError(
            f"cannot build an in-process notify adapter from {url!r}: "
            "expected 'memory://' or 'inprocess://'"
        )
    return InProcessNotifyAdapter()
