"""One pub/sub connection shared by every listener of an adapter.

A single reader task owns the connection: it subscribes to every wanted
channel, hands each message to a callback, and when Redis goes away it
reconnects with capped exponential backoff and subscribes to every wanted
channel again.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

logger = logging.getLogger("queuert.notify")

READ_SLICE_S = 1.0
"""Longest read of the shared connection before the reader takes the lock again
(and redis-py may send its health check)."""

MessageCallback = Callable[[str, str], None]


class _State(enum.Enum):
    CONNECTING = "connecting"
    UP = "up"
    DOWN = "down"


@dataclass(eq=False)
class _Waiter:
    """Waits for the server to confirm a set of channels."""

    channels: set[str]
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def confirm(self, channel: str) -> None:
        self.channels.discard(channel)
        if not self.channels:
            self.release()

    def release(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


class SharedSubscriber:
    """Keeps one pub/sub connection subscribed to the wanted channels.

    ``on_message(channel, payload)`` is called synchronously by the reader task
    for every message; it must not block.

    :meth:`add` returns once the server confirmed the new channels, or at once
    when Redis is unreachable (the channels are subscribed as soon as it is
    back). Connection errors never escape this class: they are logged and the
    reader reconnects. Every command sent on the connection (connect,
    ``SUBSCRIBE``, ``UNSUBSCRIBE``) waits at most ``confirm_timeout`` seconds.

    Everything that uses the connection, the reader's reads included, holds one
    lock: redis-py may read from it inside a ``SUBSCRIBE`` (a health check's
    ``PING``, the handshake of a reconnection after an error), and two coroutines
    reading one connection at once fail. The reader therefore reads in slices of
    ``READ_SLICE_S`` seconds, an (un)subscribe cuts the current slice short to
    take its turn, and the reader does not read at all while the connection has
    no subscription.
    """

    def __init__(
        self,
        client: Redis,
        on_message: MessageCallback,
        *,
        min_backoff: float = 0.05,
        max_backoff: float = 2.0,
        confirm_timeout: float = 5.0,
    ) -> None:
        self._client = client
        self._on_message = on_message
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._confirm_timeout = confirm_timeout
        self._wanted: set[str] = set()
        # Channels the server confirmed on the current connection.
        self._confirmed: set[str] = set()
        self._waiters: set[_Waiter] = set()
        # Held while the connection is (re)built or a (un)subscribe is sent, so
        # a command never goes to a half-built connection.
        self._lock = asyncio.Lock()
        self._pubsub: PubSub | None = None
        self._state = _State.DOWN
        self._reader: asyncio.Task[None] | None = None
        self._closed = False
        # Set when a (un)subscribe was sent or failed: the reader, idle while the
        # connection has no subscription, looks again.
        self._wake = asyncio.Event()
        # A (un)subscribe failed or timed out: the connection is rebuilt.
        self._broken = False
        # The reader's read in progress, which an (un)subscribe cuts short.
        self._read: asyncio.Future[Any] | None = None

    async def add(self, channels: Iterable[str]) -> None:
        """Subscribe to ``channels``; returns once all of them are confirmed by
        the server, or at once when Redis is unreachable."""
        if self._closed:
            return
        wanted = set(channels)
        self._wanted |= wanted
        if not wanted - self._confirmed:
            return
        self._start()
        async with self._exclusive():
            # A concurrent remove() may have dropped some of them meanwhile.
            pending = (wanted & self._wanted) - self._confirmed
            if not pending or self._state is _State.DOWN:
                return
            waiter = _Waiter(set(pending))
            self._waiters.add(waiter)
            if self._state is _State.UP and self._pubsub is not None:
                # Otherwise the reader is about to connect and subscribes to
                # every wanted channel, these included. Subscribing twice to a
                # channel is harmless.
                try:
                    async with asyncio.timeout(self._confirm_timeout):
                        await self._pubsub.subscribe(*sorted(pending))
                except (RedisError, OSError) as exc:  # TimeoutError is an OSError
                    logger.warning("redis notify: subscribe failed: %r", exc)
                    waiter.release()
                    self._broken = True
                self._wake.set()
        try:
            async with asyncio.timeout(self._confirm_timeout):
                await asyncio.shield(waiter.done)
        except TimeoutError:
            logger.warning(
                "redis notify: no subscribe confirmation within %.1fs", self._confirm_timeout
            )
        finally:
            self._waiters.discard(waiter)

    async def remove(self, channels: Iterable[str]) -> None:
        """Unsubscribe from ``channels``."""
        gone = set(channels) & self._wanted
        if not gone:
            return
        self._wanted -= gone
        self._confirmed -= gone
        if self._closed:
            return
        async with self._exclusive():
            # A concurrent add() may have wanted some of them again.
            stale = gone - self._wanted
            if stale and self._state is _State.UP and self._pubsub is not None:
                try:
                    async with asyncio.timeout(self._confirm_timeout):
                        await self._pubsub.unsubscribe(*sorted(stale))
                except (RedisError, OSError) as exc:
                    # The reader rebuilds the connection from the wanted set.
                    logger.warning("redis notify: unsubscribe failed: %r", exc)
                    self._broken = True
                self._wake.set()

    async def close(self) -> None:
        """Stop the reader and close the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._wanted.clear()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        await self._teardown()

    def _start(self) -> None:
        if self._reader is None and not self._closed:
            self._state = _State.CONNECTING
            self._reader = asyncio.create_task(self._run(), name="queuert-redis-notify-reader")

    async def _run(self) -> None:
        delay = self._min_backoff
        failing = False
        while True:
            self._state = _State.CONNECTING
            try:
                pubsub = await self._connect()
                if failing:
                    logger.info("redis notify: subscription re-established")
                failing = False
                while True:
                    if self._broken:
                        raise ConnectionError("a subscribe or unsubscribe failed")
                    if not pubsub.subscribed:
                        self._wake.clear()
                        await self._wake.wait()
                        continue
                    message = await self._read_slice(pubsub)
                    delay = self._min_backoff
                    if message is not None:
                        self._handle(message)
            except (RedisError, OSError) as exc:
                if not failing:
                    logger.warning("redis notify: subscription lost, reconnecting: %s", exc)
                else:
                    logger.debug("redis notify: reconnect failed: %s", exc)
                failing = True
            except Exception:
                # Whatever went wrong, listeners must not go deaf for good.
                logger.exception("redis notify: subscriber failed, reconnecting")
                failing = True
            await self._teardown()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff)

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        """The connection to this caller alone: the reader's read is cut short."""
        if self._read is not None:
            self._read.cancel()
        async with self._lock:
            yield

    async def _read_slice(self, pubsub: PubSub) -> dict[str, Any] | None:
        """The next message, or ``None`` after ``READ_SLICE_S`` or when an
        (un)subscribe cut the read short. Cutting a read short cancels it at the
        point where redis-py's own read timeout does, so nothing is lost."""
        async with self._lock:
            read = asyncio.ensure_future(pubsub.get_message(timeout=READ_SLICE_S))
            self._read = read
            try:
                message: dict[str, Any] | None = await read
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # the reader itself is stopping
                message = None
            finally:
                self._read = None
            return message

    async def _connect(self) -> PubSub:
        async with self._lock:
            self._broken = False
            pubsub = self._client.pubsub()
            self._pubsub = pubsub
            async with asyncio.timeout(self._confirm_timeout):
                await pubsub.connect()  # type: ignore[no-untyped-call]
                if self._wanted:
                    await pubsub.subscribe(*sorted(self._wanted))
            self._state = _State.UP
            return pubsub

    async def _teardown(self) -> None:
        self._state = _State.DOWN
        self._confirmed.clear()
        pubsub, self._pubsub = self._pubsub, None
        # Nobody should wait for a confirmation that cannot come; the channels
        # stay wanted and are subscribed on reconnect.
        for waiter in list(self._waiters):
            waiter.release()
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _handle(self, message: dict[str, Any]) -> None:
        kind = _text(message.get("type"))
        if kind == "message":
            self._on_message(_text(message["channel"]), _text(message["data"]))
        elif kind == "subscribe":
            channel = _text(message["channel"])
            if channel in self._wanted:
                self._confirmed.add(channel)
            for waiter in list(self._waiters):
                waiter.confirm(channel)
