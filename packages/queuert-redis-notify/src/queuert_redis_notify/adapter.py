"""The notify port on Redis pub/sub, with wake hints kept in Redis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import redis
from redis.asyncio import Redis
from redis.exceptions import RedisError

from queuert.errors import AdapterError, ConfigurationError, ValidationError
from queuert.ports.notify import (
    IdListener,
    NotifyAdapter,
    NotifyCapabilities,
    ScheduledListener,
    ScheduledSignal,
    Subscription,
)
from queuert.ports.sync import SyncPublisher
from queuert_redis_notify.scripts import CLAIM_WAKE
from queuert_redis_notify.subscriber import SharedSubscriber
from queuert_redis_notify.sync_publisher import RedisSyncPublisher
from queuert_redis_notify.wire import Names, decode_scheduled, encode_scheduled

logger = logging.getLogger("queuert.notify")

DEFAULT_PREFIX = "queuert:"
DEFAULT_HINT_TTL = 60.0


@dataclass(eq=False)
class _Listener:
    """One listener on one channel. ``only`` keeps id signals for that id."""

    channel: str
    deliver: Callable[[str], Awaitable[None]]
    only: str | None = None
    active: bool = True


class _RedisSubscription(Subscription):
    def __init__(self, adapter: RedisNotifyAdapter, listeners: list[_Listener]) -> None:
        self._adapter = adapter
        self._listeners = listeners

    async def unsubscribe(self) -> None:
        listeners, self._listeners = self._listeners, []
        if listeners:
            await self._adapter._remove(listeners)


class RedisNotifyAdapter(NotifyAdapter):
    """Notify adapter on Redis pub/sub (``redis.asyncio``).

    Signals travel on channels named under ``prefix`` (default ``"queuert:"``);
    adapters share signals exactly when they use the same Redis and prefix.
    Every :meth:`publish_job_scheduled` also stores a wake budget of ``count``
    under a fresh hint key that expires after ``hint_ttl`` seconds;
    :meth:`claim_wake` consumes it atomically, so ``count`` new jobs wake about
    ``count`` listeners across all processes. A hint that expired or cannot be
    read answers ``True``.

    All listeners of one adapter share a single subscriber connection. When
    Redis is unreachable, publishing logs and returns, :meth:`claim_wake`
    answers ``True``, and the subscriber reconnects with capped exponential
    backoff (``reconnect_min`` .. ``reconnect_max`` seconds) and resubscribes
    every channel; signals published while it was away are lost (workers poll).

    ``client`` should be created with ``decode_responses=True``. It is closed by
    :meth:`close` only when ``close_client`` is true (as :func:`from_url` does).
    ``sync_client``, a blocking ``redis.Redis`` on the same server (``from_url``
    creates one, connecting only when first used), serves :meth:`sync_publisher`;
    ``close_client`` covers it too.
    Raises :class:`~queuert.errors.ConfigurationError` for an empty prefix or a
    non-positive ``hint_ttl``.
    """

    capabilities = NotifyCapabilities(cross_process=True, wake_hints=True)

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        hint_ttl: float = DEFAULT_HINT_TTL,
        close_client: bool = False,
        reconnect_min: float = 0.05,
        reconnect_max: float = 2.0,
        sync_client: redis.Redis | None = None,
    ) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise ConfigurationError(
                f"redis notify prefix must be a non-empty string, got {prefix!r}"
            )
        if isinstance(hint_ttl, bool) or not isinstance(hint_ttl, int | float) or hint_ttl <= 0:
            raise ConfigurationError(
                f"redis notify hint_ttl must be positive seconds, got {hint_ttl!r}"
            )
        self._client = client
        self._names = Names(prefix)
        self._hint_ttl_ms = max(1, round(hint_ttl * 1000))
        self._close_client = close_client
        self._claim_script = client.register_script(CLAIM_WAKE)
        self._subscriber = SharedSubscriber(
            client, self._dispatch, min_backoff=reconnect_min, max_backoff=reconnect_max
        )
        self._listeners: dict[str, list[_Listener]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._publish_failing = False
        self._closed = False
        self._sync_client = sync_client
        self._sync_publisher: RedisSyncPublisher | None = None

    @property
    def prefix(self) -> str:
        """The prefix of every channel and key this adapter uses."""
        return self._names.prefix

    # -- publishing ----------------------------------------------------------

    async def publish_job_scheduled(self, *, queue: str, count: int) -> None:
        """Publish ``"<count>|<hint>"`` on the queue's channel after storing the
        wake budget. Raises :class:`~queuert.errors.ValidationError` for a count
        that is not a positive integer; Redis errors are logged, not raised."""
        _check_name("queue", queue)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValidationError(f"job-scheduled count must be a positive integer, got {count!r}")
        if self._closed:
            return
        hint = uuid.uuid4().hex
        try:
            # One round trip; the hint is stored before any listener can see
            # the signal because Redis runs a connection's commands in order.
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.set(self._names.hint_key(hint), count, px=self._hint_ttl_ms)
                pipe.publish(self._names.scheduled(queue), encode_scheduled(count, hint))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._publish_failed(exc)
        else:
            self._publish_ok()

    async def publish_chain_completed(self, *, chain_id: str) -> None:
        _check_name("chain_id", chain_id)
        await self._publish(self._names.chain_completed, chain_id)

    async def publish_lease_lost(self, *, job_id: str) -> None:
        _check_name("job_id", job_id)
        await self._publish(self._names.lease_lost, job_id)

    async def _publish(self, channel: str, payload: str) -> None:
        if self._closed:
            return
        try:
            await self._client.publish(channel, payload)
        except (RedisError, OSError) as exc:
            self._publish_failed(exc)
        else:
            self._publish_ok()

    def _publish_failed(self, exc: BaseException) -> None:
        # One warning per outage, not one per signal.
        if not self._publish_failing:
            logger.warning("redis notify: publish failed, workers fall back to polling: %s", exc)
        else:
            logger.debug("redis notify: publish failed: %s", exc)
        self._publish_failing = True

    def _publish_ok(self) -> None:
        if self._publish_failing:
            logger.info("redis notify: publishing works again")
        self._publish_failing = False

    def sync_publisher(self) -> SyncPublisher | None:
        """The same signals published from synchronous code (see
        :mod:`queuert_redis_notify.sync_publisher`), through ``sync_client``;
        ``None`` without one."""
        if self._sync_client is None:
            return None
        if self._sync_publisher is None:
            self._sync_publisher = RedisSyncPublisher(
                self._sync_client,
                names=self._names,
                hint_ttl_ms=self._hint_ttl_ms,
                close_client=self._close_client,
            )
        return self._sync_publisher

    # -- wake hints ----------------------------------------------------------

    async def claim_wake(self, *, signal: ScheduledSignal) -> bool:
        """Take one unit of the signal's budget: ``True`` while some is left,
        ``False`` once ``count`` claims succeeded. ``True`` without a hint, when
        the hint expired, and when Redis cannot be reached."""
        if signal.hint is None or self._closed:
            return True
        try:
            result = await self._claim_script(keys=[self._names.hint_key(signal.hint)])
        except (RedisError, OSError) as exc:
            logger.debug("redis notify: claim_wake failed, answering True: %s", exc)
            return True
        return bool(int(result))

    # -- subscribing ---------------------------------------------------------

    async def subscribe_job_scheduled(
        self, *, queues: Sequence[str], listener: ScheduledListener
    ) -> Subscription:
        if isinstance(queues, str):
            raise ValidationError(f"queues must be a sequence of queue names, got {queues!r}")
        names = list(dict.fromkeys(queues))
        for queue in names:
            _check_name("queue", queue)
        return await self._add(
            [
                _Listener(self._names.scheduled(queue), _scheduled_delivery(queue, listener))
                for queue in names
            ]
        )

    async def subscribe_chain_completed(
        self, *, chain_id: str | None, listener: IdListener
    ) -> Subscription:
        if chain_id is not None:
            _check_name("chain_id", chain_id)
        return await self._add([_Listener(self._names.chain_completed, listener, only=chain_id)])

    async def subscribe_lease_lost(
        self, *, job_id: str | None, listener: IdListener
    ) -> Subscription:
        if job_id is not None:
            _check_name("job_id", job_id)
        return await self._add([_Listener(self._names.lease_lost, listener, only=job_id)])

    async def _add(self, listeners: list[_Listener]) -> Subscription:
        if self._closed:
            raise AdapterError("the redis notify adapter is closed")
        for entry in listeners:
            self._listeners.setdefault(entry.channel, []).append(entry)
        subscription = _RedisSubscription(self, listeners)
        await self._subscriber.add(entry.channel for entry in listeners)
        return subscription

    async def _remove(self, listeners: list[_Listener]) -> None:
        emptied: list[str] = []
        for entry in listeners:
            entry.active = False
            registered = self._listeners.get(entry.channel)
            if registered is None:
                continue
            with contextlib.suppress(ValueError):
                registered.remove(entry)
            if not registered:
                del self._listeners[entry.channel]
                emptied.append(entry.channel)
        if emptied:
            await self._subscriber.remove(emptied)

    def _dispatch(self, channel: str, payload: str) -> None:
        for entry in list(self._listeners.get(channel, ())):
            if entry.only is not None and entry.only != payload:
                continue
            task = asyncio.create_task(self._deliver(entry, payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, entry: _Listener, payload: str) -> None:
        # Checked here, not at dispatch, so nothing reaches a listener after
        # its unsubscribe() returned.
        if not entry.active:
            return
        try:
            await entry.deliver(payload)
        except Exception:
            logger.exception("redis notify: listener on %r failed", entry.channel)

    # -- life cycle ----------------------------------------------------------

    async def close(self) -> None:
        """Stop every subscription, cancel listener calls still running and
        release the connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for listeners in self._listeners.values():
            for entry in listeners:
                entry.active = False
        self._listeners.clear()
        await self._subscriber.close()
        current = asyncio.current_task()
        pending = [task for task in self._tasks if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._close_client:
            with contextlib.suppress(RedisError, OSError):
                await self._client.aclose()
            if self._sync_client is not None:
                with contextlib.suppress(RedisError, OSError):
                    self._sync_client.close()


def _scheduled_delivery(
    queue: str, listener: ScheduledListener
) -> Callable[[str], Awaitable[None]]:
    async def deliver(payload: str) -> None:
        try:
            signal = decode_scheduled(queue, payload)
        except ValueError:
            logger.warning("redis notify: ignoring malformed job-scheduled payload %r", payload)
            return
        await listener(signal)

    return deliver


def _check_name(what: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{what} must be a non-empty string, got {value!r}")
