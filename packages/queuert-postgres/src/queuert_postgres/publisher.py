"""Batching of outgoing notifications.

Every publish that arrives while a batch is on its way to the server joins the
next batch, so under load one round trip carries many notifications, and at
rest a publish costs one round trip as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

from queuert_postgres import payloads

Send = Callable[[list[str], list[str]], Awaitable[None]]
"""Sends ``(channels, payloads)`` in one statement; logs instead of raising."""


class _Batch:
    def __init__(self) -> None:
        # Insertion-ordered; counts of one queue are summed, since PostgreSQL delivers
        # identical notifications of one transaction only once.
        self.counted: dict[tuple[str, str], int] = {}
        self.plain: dict[tuple[str, str], None] = {}
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def add(self, channel: str, key: str, count: int | None) -> None:
        if count is None:
            self.plain[(channel, key)] = None
        else:
            self.counted[(channel, key)] = self.counted.get((channel, key), 0) + count

    def encoded(self) -> tuple[list[str], list[str]]:
        channels: list[str] = []
        texts: list[str] = []
        for (channel, key), count in self.counted.items():
            channels.append(channel)
            texts.append(payloads.encode(key, count=count))
        for channel, key in self.plain:
            channels.append(channel)
            texts.append(payloads.encode(key))
        return channels, texts

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


class Publisher:
    """Queues notifications and sends them in batches with ``send``."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._next: _Batch | None = None
        self._flushing: asyncio.Task[None] | None = None

    async def publish(self, channel: str, key: str, count: int | None = None) -> None:
        """Return once the notification was handed to the server (or dropped with a
        logged warning)."""
        await self.publish_many([(channel, key, count)])

    async def publish_many(self, notifications: Sequence[tuple[str, str, int | None]]) -> None:
        """:meth:`publish` for each ``(channel, key, count)``, in one batch."""
        # Shielded: a caller that gives up must not cancel the batch of the others.
        await asyncio.shield(self.post_many(notifications))

    def post_many(
        self, notifications: Sequence[tuple[str, str, int | None]]
    ) -> asyncio.Future[None]:
        """Queue each ``(channel, key, count)`` for the next batch without waiting;
        returns the batch's future, done once it was handed to the server (or
        dropped with a logged warning, or by :meth:`close`)."""
        batch = self._next
        if batch is None:
            batch = self._next = _Batch()
        for channel, key, count in notifications:
            batch.add(channel, key, count)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush(), name="queuert-pg-notify")
        return batch.done

    async def _flush(self) -> None:
        while self._next is not None:
            batch, self._next = self._next, None
            try:
                await self._send(*batch.encoded())
            finally:
                batch.finish()

    async def close(self) -> None:
        """Stop sending; publishers still waiting return."""
        if self._flushing is not None:
            self._flushing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flushing
        if self._next is not None:
            self._next.finish()
            self._next = None
