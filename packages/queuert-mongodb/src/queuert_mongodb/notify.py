"""The notify port on MongoDB change streams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pymongo
from bson import ObjectId
from pymongo import AsyncMongoClient
from pymongo.asynchronous.change_stream import AsyncCollectionChangeStream
from pymongo.asynchronous.collection import AsyncCollection

from queuert.errors import AdapterError
from queuert.ports.notify import (
    IdListener,
    NotifyAdapter,
    NotifyCapabilities,
    ScheduledListener,
    ScheduledSignal,
    Subscription,
)
from queuert_mongodb.errors import DRIVER_ERRORS, translate
from queuert_mongodb.names import DEFAULT_DATABASE, DEFAULT_PREFIX, Collections, validate_database
from queuert_mongodb.sessions import (
    check_deployment,
    open_client,
    operation_timeout,
    validate_client,
    validate_timeout,
)
from queuert_mongodb.signals import (
    CHAIN_COMPLETED,
    LEASE_LOST,
    SCHEDULED,
    SIGNAL_TTL_S,
    TTL_INDEX_NAME,
    WATCH_PIPELINE,
    Signal,
    signal_from_change,
    signal_update,
)

logger = logging.getLogger("queuert.notify")

MAX_AWAIT_MS = 500
"""How long the server holds one read of the change stream open waiting for a signal."""

_RETRY_MIN_S = 0.05
_RETRY_MAX_S = 2.0


@dataclass(eq=False)
class _Listener:
    kind: str
    keys: frozenset[str] | None
    """The queues or ids the listener hears; ``None`` for every one."""
    deliver: Callable[[Signal], Awaitable[None]]
    active: bool = True


class _MongoSubscription(Subscription):
    def __init__(self, adapter: MongoNotifyAdapter, listener: _Listener) -> None:
        self._adapter = adapter
        self._listener = listener

    async def unsubscribe(self) -> None:
        self._adapter._remove(self._listener)


class MongoNotifyAdapter(NotifyAdapter):
    """Notify adapter on a MongoDB replica set, so a MongoDB application needs no other
    server for wake-ups.

    Publishing inserts a small signal document into ``{prefix}signals`` (with the
    server's time; a TTL index deletes signals after five minutes). Each adapter reads
    the collection's change stream on one cursor, opened by the first subscription and
    shared by all of its listeners; adapters share signals exactly when they use the same
    database and prefix. The stream resumes after transient errors (PyMongo's resume
    logic, then reopening with capped backoff); signals published while it was away are
    lost and workers poll. Publishing to an unreachable server logs and returns.

    ``client`` is closed by :meth:`close` only when the adapter created it
    (:meth:`connect`, :func:`from_url`).
    """

    capabilities = NotifyCapabilities(cross_process=True, wake_hints=False)

    def __init__(
        self,
        client: AsyncMongoClient[Any],
        *,
        database: str = DEFAULT_DATABASE,
        collection_prefix: str = DEFAULT_PREFIX,
        operation_timeout_s: float | None = None,
    ) -> None:
        """Raises :class:`~queuert.errors.ConfigurationError` for an invalid database
        name, prefix or timeout. Opens nothing until first used."""
        self._client = validate_client(client)
        self.operation_timeout_s = operation_timeout(self._client, operation_timeout_s)
        self.database = validate_database(database)
        self.collection_prefix = collection_prefix
        self.collections = Collections.for_prefix(collection_prefix)
        self._signals: AsyncCollection[dict[str, Any]] = client.get_database(
            database
        ).get_collection(self.collections.signals)
        self._owns_client = False
        self._closed = False
        self._listeners: list[_Listener] = []
        self._stream: AsyncCollectionChangeStream[dict[str, Any]] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._opening = asyncio.Lock()
        self._ttl_ready = False

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        database: str | None = None,
        collection_prefix: str | None = None,
        operation_timeout_s: float | None = None,
        **client_options: Any,
    ) -> MongoNotifyAdapter:
        """An adapter with a client of its own, as
        :meth:`~queuert_mongodb.MongoStateAdapter.connect` makes one; checks that the
        server is a replica set (change streams need one)."""
        if operation_timeout_s is not None:
            validate_timeout(operation_timeout_s)
        client, parsed = open_client(url, client_options)
        try:
            adapter = cls(
                client,
                database=database if database is not None else parsed.database,
                collection_prefix=(
                    collection_prefix if collection_prefix is not None else parsed.collection_prefix
                ),
                operation_timeout_s=operation_timeout_s,
            )
            adapter._owns_client = True
            await check_deployment(client, adapter.operation_timeout_s, "carry queuert signals")
        except BaseException:
            await client.close()
            raise
        return adapter

    @classmethod
    async def from_url(cls, url: str) -> MongoNotifyAdapter:
        return await cls.connect(url)

    def __repr__(self) -> str:
        return (
            f"MongoNotifyAdapter(database={self.database!r}, "
            f"collection_prefix={self.collection_prefix!r})"
        )

    # -- publishing -----------------------------------------------------------------

    async def publish_job_scheduled(self, *, queue: str, count: int) -> None:
        await self._publish(Signal(SCHEDULED, queue, count))

    async def publish_chain_completed(self, *, chain_id: str) -> None:
        await self._publish(Signal(CHAIN_COMPLETED, chain_id))

    async def publish_lease_lost(self, *, job_id: str) -> None:
        await self._publish(Signal(LEASE_LOST, job_id))

    async def _publish(self, signal: Signal) -> None:
        if self._closed:
            return
        try:
            with pymongo.timeout(self.operation_timeout_s):
                await self._ensure_ttl_index()
                await self._signals.update_one(
                    {"_id": ObjectId()}, signal_update(signal), upsert=True
                )
        except DRIVER_ERRORS as exc:
            logger.warning(
                "could not publish %s signal for %r to MongoDB: %s",
                signal.kind,
                signal.key[:200],
                translate(exc),
            )

    async def _ensure_ttl_index(self) -> None:
        if not self._ttl_ready:
            await self._signals.create_index(
                "at", name=TTL_INDEX_NAME, expireAfterSeconds=SIGNAL_TTL_S
            )
            self._ttl_ready = True

    # -- subscribing ------------------------------------------------------------------

    async def subscribe_job_scheduled(
        self, *, queues: Sequence[str], listener: ScheduledListener
    ) -> Subscription:
        async def deliver(signal: Signal) -> None:
            await listener(ScheduledSignal(queue=signal.key, count=signal.count))

        return await self._add(_Listener(SCHEDULED, frozenset(queues), deliver))

    async def subscribe_chain_completed(
        self, *, chain_id: str | None, listener: IdListener
    ) -> Subscription:
        return await self._add(_Listener(CHAIN_COMPLETED, _only(chain_id), _by_key(listener)))

    async def subscribe_lease_lost(
        self, *, job_id: str | None, listener: IdListener
    ) -> Subscription:
        return await self._add(_Listener(LEASE_LOST, _only(job_id), _by_key(listener)))

    async def _add(self, listener: _Listener) -> Subscription:
        if self._closed:
            raise AdapterError("the MongoDB notify adapter is closed")
        await self._open_stream()
        self._listeners.append(listener)
        return _MongoSubscription(self, listener)

    def _remove(self, listener: _Listener) -> None:
        listener.active = False
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    async def _open_stream(self) -> None:
        """Open the change stream and start its reader (once): signals inserted after
        this returns are read. Later the reader alone reopens the stream."""
        async with self._opening:
            if self._reader is not None:
                return
            try:
                with pymongo.timeout(self.operation_timeout_s):
                    await self._ensure_ttl_index()  # which creates the collection
                    self._stream = await self._signals.watch(
                        WATCH_PIPELINE, max_await_time_ms=MAX_AWAIT_MS
                    )
            except DRIVER_ERRORS as exc:
                raise translate(exc) from exc
            self._reader = asyncio.create_task(self._read(), name="queuert-mongodb-signals")

    async def _read(self) -> None:
        delay = _RETRY_MIN_S
        while not self._is_closed():
            stream = self._stream
            try:
                if stream is None:
                    with pymongo.timeout(self.operation_timeout_s):
                        stream = self._stream = await self._signals.watch(
                            WATCH_PIPELINE, max_await_time_ms=MAX_AWAIT_MS
                        )
                with pymongo.timeout(self.operation_timeout_s):
                    change = await stream.try_next()
                delay = _RETRY_MIN_S
            except DRIVER_ERRORS as exc:
                if self._is_closed():
                    return
                logger.warning("MongoDB signal stream failed, reopening: %s", translate(exc))
                if stream is not None and not stream.alive:
                    self._stream = None
                    with contextlib.suppress(*DRIVER_ERRORS):
                        await stream.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
                continue
            if change is not None:
                await self._dispatch(change)

    def _is_closed(self) -> bool:
        return self._closed

    async def _dispatch(self, change: Mapping[str, Any]) -> None:
        signal = signal_from_change(change)
        if signal is None:
            return
        matched = [
            listener
            for listener in list(self._listeners)
            if listener.active
            and listener.kind == signal.kind
            and (listener.keys is None or signal.key in listener.keys)
        ]
        if matched:
            await asyncio.gather(*(self._call(listener, signal) for listener in matched))

    async def _call(self, listener: _Listener, signal: Signal) -> None:
        if not listener.active:
            return
        try:
            await listener.deliver(signal)
        except Exception:
            logger.exception("notify listener failed on %s signal %r", signal.kind, signal.key)

    async def close(self) -> None:
        """Stop the change stream, drop every listener and close the client if the
        adapter created it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for listener in self._listeners:
            listener.active = False
        self._listeners.clear()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            # A listener may close the adapter from inside the reader task.
            if reader is not asyncio.current_task():
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(*DRIVER_ERRORS), pymongo.timeout(self.operation_timeout_s):
                await stream.close()
        if self._owns_client:
            await self._client.close()


def _only(key: str | None) -> frozenset[str] | None:
    return None if key is None else frozenset((key,))


def _by_key(listener: IdListener) -> Callable[[Signal], Awaitable[None]]:
    async def deliver(signal: Signal) -> None:
        await listener(signal.key)

    return deliver


async def from_url(url: str) -> MongoNotifyAdapter:
    """Entry point of the ``mongodb`` and ``mongodb+srv`` notify schemes: see
    :meth:`MongoNotifyAdapter.connect`."""
    return await MongoNotifyAdapter.connect(url)
