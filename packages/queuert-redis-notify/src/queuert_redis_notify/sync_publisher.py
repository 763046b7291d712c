"""Publishing the adapter's signals from synchronous code (:mod:`queuert.sync`),
through redis-py's blocking client: the same channels, payloads and wake budgets
as :class:`~queuert_redis_notify.RedisNotifyAdapter`'s asynchronous publishing, so
the same subscribers receive them."""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable

import redis
from redis.exceptions import RedisError

from queuert.ports.sync import SyncPublisher
from queuert_redis_notify.wire import Names, encode_scheduled

logger = logging.getLogger("queuert.notify")


class RedisSyncPublisher(SyncPublisher):
    """Signals published with a blocking ``redis.Redis`` client (created with
    ``decode_responses=True`` and socket timeouts: :func:`~queuert_redis_notify.from_url`
    gives it connect 2 s, commands 5 s). Redis errors are logged, once per outage,
    and never raised: workers fall back to polling. Thread-safe (the client's pool
    is). :meth:`close` closes the client when ``close_client`` is true."""

    def __init__(
        self, client: redis.Redis, *, names: Names, hint_ttl_ms: int, close_client: bool
    ) -> None:
        self._client = client
        self._names = names
        self._hint_ttl_ms = hint_ttl_ms
        self._close_client = close_client
        self._lock = threading.Lock()
        self._failing = False
        self._closed = False

    def publish_job_scheduled(self, *, queue: str, count: int) -> None:
        hint = uuid.uuid4().hex

        def send() -> None:
            # One round trip; the budget is stored before any listener sees the signal.
            with self._client.pipeline(transaction=False) as pipe:
                pipe.set(self._names.hint_key(hint), count, px=self._hint_ttl_ms)
                pipe.publish(self._names.scheduled(queue), encode_scheduled(count, hint))
                pipe.execute()

        self._send(send)

    def publish_chain_completed(self, *, chain_id: str) -> None:
        self._send(lambda: self._client.publish(self._names.chain_completed, chain_id))

    def publish_lease_lost(self, *, job_id: str) -> None:
        self._send(lambda: self._client.publish(self._names.lease_lost, job_id))

    def _send(self, send: Callable[[], object]) -> None:
        if self._closed:
            return
        try:
            send()
        except (RedisError, OSError) as exc:
            with self._lock:
                first, self._failing = not self._failing, True
            (logger.warning if first else logger.debug)(
                "redis notify: publish failed, workers fall back to polling: %s", exc
            )
        else:
            with self._lock:
                recovered, self._failing = self._failing, False
            if recovered:
                logger.info("redis notify: publishing works again")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._close_client:
            with contextlib.suppress(RedisError, OSError):
                self._client.close()
