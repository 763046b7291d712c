"""The PostgreSQL LISTEN/NOTIFY notify adapter."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeAlias
from urllib.parse import parse_qsl, urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from queuert.ports.notify import (
    IdListener,
    NotifyAdapter,
    NotifyCapabilities,
    ScheduledListener,
    ScheduledSignal,
    Subscription,
)
from queuert.ports.sync import SyncPublisher
from queuert_postgres import payloads
from queuert_postgres.driver_errors import DRIVER_ERRORS
from queuert_postgres.identifiers import validate_prefix
from queuert_postgres.publisher import Publisher
from queuert_postgres.urls import split_url

logger = logging.getLogger(__name__)

Kind = Literal["scheduled", "chain", "lease"]
_SUFFIXES: dict[Kind, str] = {
    "scheduled": "_job_scheduled",
    "chain": "_chain_completed",
    "lease": "_lease_lost",
}
DEFAULT_CHANNEL_PREFIX = "queuert"
DEFAULT_APPLICATION_NAME = "queuert-listener"
URL_OPTIONS = ("channel_prefix", "schema", "table_prefix", "min_size", "max_size")

_AnyConnection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"


class _Subscription(Subscription):
    def __init__(
        self,
        adapter: PostgresNotifyAdapter,
        kind: Kind,
        keys: frozenset[str] | None,
        listener: Callable[[Any], Awaitable[None]],
    ) -> None:
        self.adapter = adapter
        self.kind: Kind = kind
        self.keys = keys
        self.listener = listener
        self.active = True

    async def unsubscribe(self) -> None:
        if self.active:
            self.active = False
            await self.adapter._remove(self)


class PostgresNotifyAdapter(NotifyAdapter):
    """Notify adapter on PostgreSQL LISTEN/NOTIFY.

    Each adapter keeps one dedicated listening connection (opened on the first
    subscription, named ``application_name`` in ``pg_stat_activity``) that
    carries the three signals over three channels named after
    ``channel_prefix``. When that connection dies (server restart,
    ``pg_terminate_backend``, network failure noticed by a periodic ping), it is
    reopened with exponential backoff and every channel is listened to again;
    notifications sent meanwhile are lost, which is fine for hints. Connecting,
    ``LISTEN`` and ``UNLISTEN`` each wait at most ``connect_timeout`` seconds: a
    subscription whose ``LISTEN`` gets no answer returns all the same (its
    listener is called once the reopened connection listens again).

    Publishing runs ``pg_notify`` on ``publish_pool`` (by default a small pool of
    the adapter's own); publications made while one is on its way share the next
    statement. When the server cannot be reached, or does not answer within
    ``publish_timeout`` seconds (a connection that silently drops packets),
    publishing logs a warning and returns; connections of the adapter's own
    publish pool also get ``publish_timeout`` as asyncpg's ``command_timeout``.
    """

    capabilities = NotifyCapabilities(cross_process=True, wake_hints=False)

    def __init__(
        self,
        dsn: str,
        *,
        channel_prefix: str = DEFAULT_CHANNEL_PREFIX,
        application_name: str = DEFAULT_APPLICATION_NAME,
        publish_pool: asyncpg.Pool[Any] | None = None,
        connect_timeout: float = 5.0,
        publish_timeout: float = 5.0,
        ping_interval: float = 10.0,
        reconnect_delay: float = 0.05,
        max_reconnect_delay: float = 5.0,
        connect_options: dict[str, Any] | None = None,
    ) -> None:
        """Raises :class:`~queuert.errors.ConfigurationError` for an invalid
        ``channel_prefix``. Nothing connects until first used."""
        validate_prefix(channel_prefix, what="channel prefix", longest_suffix="_chain_completed")
        self._dsn = dsn
        self._channel_prefix = channel_prefix
        self._channels: dict[Kind, str] = {
            kind: channel_prefix + suffix for kind, suffix in _SUFFIXES.items()
        }
        self._kinds: dict[str, Kind] = {channel: kind for kind, channel in self._channels.items()}
        self._application_name = application_name
        self._connect_timeout = connect_timeout
        self._publish_timeout = publish_timeout
        self._ping_interval = ping_interval
        self._reconnect_delay = reconnect_delay
        self._max_reconnect_delay = max_reconnect_delay
        self._connect_options = dict(connect_options or {})
        self._publish_pool = publish_pool
        self._owns_publish_pool = publish_pool is None
        self._pool_lock = asyncio.Lock()
        self._publisher = Publisher(self._send)
        # Listener side. _conn_lock serialises every statement on the listening
        # connection (LISTEN, UNLISTEN, ping): asyncpg runs one at a time.
        self._conn: asyncpg.Connection[Any] | None = None
        self._conn_lock = asyncio.Lock()
        self._listening: set[str] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self._first_attempt_done = asyncio.Event()
        self._by_key: dict[Kind, dict[str, list[_Subscription]]] = {k: {} for k in _SUFFIXES}
        self._by_hash: dict[Kind, dict[str, list[_Subscription]]] = {k: {} for k in _SUFFIXES}
        self._any: dict[Kind, list[_Subscription]] = {k: [] for k in _SUFFIXES}
        self._count: dict[Kind, int] = dict.fromkeys(_SUFFIXES, 0)
        self._deliveries: set[asyncio.Task[None]] = set()
        self._closed = False
        self._sync_publisher: SyncPublisher | None = None

    @classmethod
    async def from_url(cls, url: str) -> PostgresNotifyAdapter:
        """Create an adapter from a ``postgresql://`` (or ``postgres://``) URL.

        The query may hold ``channel_prefix``; without it, a ``schema`` (and
        ``table_prefix``) given for the state adapter on the same URL names the
        channels, so that deployments in different schemas do not wake each other.
        """
        dsn, options = split_url(url, options=URL_OPTIONS)
        prefix = options.get("channel_prefix")
        if prefix is None:
            prefix = options.get("schema", DEFAULT_CHANNEL_PREFIX)
            table_prefix = options.get("table_prefix", "").strip("_")
            if table_prefix:
                prefix = f"{prefix}_{table_prefix}"
        return cls(dsn, channel_prefix=prefix)

    @property
    def dsn(self) -> str:
        """The connection string the adapter listens (and by default publishes) on."""
        return self._dsn

    @property
    def publish_pool(self) -> asyncpg.Pool[Any] | None:
        """The pool given to publish on, or ``None`` when the adapter uses its own."""
        return None if self._owns_publish_pool else self._publish_pool

    @property
    def channel_prefix(self) -> str:
        return self._channel_prefix

    @property
    def application_name(self) -> str:
        """The listening connection's name in ``pg_stat_activity``."""
        return self._application_name

    @property
    def channels(self) -> tuple[str, str, str]:
        """The job-scheduled, chain-completed and lease-lost channel names."""
        c = self._channels
        return c["scheduled"], c["chain"], c["lease"]

    # -- publishing ------------------------------------------------------------

    def sync_publisher(self) -> SyncPublisher | None:
        """Publishing from synchronous code over a psycopg connection of its own (see
        :mod:`queuert_postgres.psycopg_publisher`); ``None`` without the ``psycopg``
        extra. Closed with the adapter."""
        if self._sync_publisher is None:
            try:
                from queuert_postgres.psycopg_publisher import PostgresSyncPublisher
            except ImportError:
                return None
            self._sync_publisher = PostgresSyncPublisher(
                self._dsn,
                channels=self.channels,
                application_name=self._application_name,
                connect_timeout=self._connect_timeout,
                publish_timeout=self._publish_timeout,
            )
        return self._sync_publisher

    async def publish_job_scheduled(self, *, queue: str, count: int) -> None:
        await self._publish("scheduled", queue, count)

    async def publish_chain_completed(self, *, chain_id: str) -> None:
        await self._publish("chain", chain_id, None)

    async def publish_lease_lost(self, *, job_id: str) -> None:
        await self._publish("lease", job_id, None)

    async def publish_signals(
        self, *, scheduled_queues: Sequence[str] = (), ended_chains: Sequence[str] = ()
    ) -> None:
        """Publish one job-scheduled signal (count 1) per entry of ``scheduled_queues``
        and one chain-completed signal per entry of ``ended_chains``, together: one
        statement, where as many separate calls would wait for one each."""
        await asyncio.shield(
            self.post_signals(scheduled_queues=scheduled_queues, ended_chains=ended_chains)
        )

    def post_signals(
        self, *, scheduled_queues: Sequence[str] = (), ended_chains: Sequence[str] = ()
    ) -> asyncio.Future[None]:
        """:meth:`publish_signals` without waiting (call it from a running event loop):
        the signals join the next batch, which the adapter sends on its own. Returns a
        future that is done once they were handed to the server, or dropped (with a
        logged warning, or by :meth:`close`)."""
        if self._closed:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        c = self._channels
        return self._publisher.post_many(
            [(c["scheduled"], queue, 1) for queue in scheduled_queues]
            + [(c["chain"], chain_id, None) for chain_id in ended_chains]
        )

    async def _publish(self, kind: Kind, key: str, count: int | None) -> None:
        if not self._closed:
            await self._publisher.publish(self._channels[kind], key, count)

    async def _send(self, channels: list[str], texts: list[str]) -> None:
        try:
            async with asyncio.timeout(self._publish_timeout):
                pool = await self._get_publish_pool()
            # Bounded as a whole (waiting for a connection, the statement, the release):
            # a server behind a connection that silently drops packets never answers,
            # and cancelling the statement may wait on it too; so the statement runs
            # in a task of its own, and on timeout the connections of the adapter's
            # own publish pool are dropped (which ends that task).
            work = asyncio.ensure_future(
                pool.execute(
                    "SELECT pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS n(c, p)",
                    channels,
                    texts,
                    timeout=self._publish_timeout,
                )
            )
            try:
                await asyncio.wait_for(asyncio.shield(work), self._publish_timeout)
            except BaseException:
                work.add_done_callback(_ignore_outcome)
                if self._owns_publish_pool and pool is self._publish_pool:
                    self._publish_pool = None
                    pool.terminate()
                raise
        except Exception as exc:  # notifications are hints: publishing never raises
            logger.warning(
                "%d PostgreSQL notification(s) on %s not sent: %r",
                len(texts),
                ", ".join(sorted(set(channels))),
                exc,
            )

    async def _get_publish_pool(self) -> asyncpg.Pool[Any]:
        if self._publish_pool is not None:
            return self._publish_pool
        async with self._pool_lock:
            if self._publish_pool is None:
                # min_size=0: creating the pool does not connect, so a server that is
                # down only fails the publish that needs it. No reset on release:
                # pg_notify leaves no session state, and asyncpg's reset would cost a
                # second round trip per publish.
                self._publish_pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=0,
                    max_size=2,
                    timeout=self._connect_timeout,
                    reset=_no_reset,
                    **{"command_timeout": self._publish_timeout, **self._connect_options},
                )
            return self._publish_pool

    # -- subscribing ----------------------------------------------------------

    async def subscribe_job_scheduled(
        self, *, queues: Sequence[str], listener: ScheduledListener
    ) -> Subscription:
        return await self._add("scheduled", frozenset(queues), listener)

    async def subscribe_chain_completed(
        self, *, chain_id: str | None, listener: IdListener
    ) -> Subscription:
        keys = None if chain_id is None else frozenset((chain_id,))
        return await self._add("chain", keys, listener)

    async def subscribe_lease_lost(
        self, *, job_id: str | None, listener: IdListener
    ) -> Subscription:
        keys = None if job_id is None else frozenset((job_id,))
        return await self._add("lease", keys, listener)

    async def _add(
        self,
        kind: Kind,
        keys: frozenset[str] | None,
        listener: Callable[[Any], Awaitable[None]],
    ) -> Subscription:
        if self._closed:
            raise RuntimeError("the notify adapter is closed")
        sub = _Subscription(self, kind, keys, listener)
        if keys is None:
            self._any[kind].append(sub)
        else:
            for key in keys:
                self._by_key[kind].setdefault(key, []).append(sub)
                if len(key.encode()) >= payloads.LONG_KEY_BYTES:
                    self._by_hash[kind].setdefault(payloads.key_hash(key), []).append(sub)
        self._count[kind] += 1
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name="queuert-pg-listener")
        # Active on return: wait for the first connection attempt, then LISTEN.
        await self._first_attempt_done.wait()
        await self._listen(kind)
        return sub

    async def _remove(self, sub: _Subscription) -> None:
        kind = sub.kind
        if sub.keys is None:
            self._any[kind].remove(sub)
        else:
            for key in sub.keys:
                _discard(self._by_key[kind], key, sub)
                if len(key.encode()) >= payloads.LONG_KEY_BYTES:
                    _discard(self._by_hash[kind], payloads.key_hash(key), sub)
        self._count[kind] -= 1
        if self._count[kind] == 0:
            await self._unlisten(kind)

    async def _listen(self, kind: Kind) -> None:
        channel = self._channels[kind]
        async with self._conn_lock:
            conn = self._conn
            if conn is None or channel in self._listening or self._count[kind] == 0:
                return  # the supervisor listens when it (re)connects
            try:
                # A half-open connection never answers: bounded, like every wait on
                # the network; the supervisor reconnects and listens again.
                await asyncio.wait_for(
                    conn.add_listener(channel, self._on_notification),
                    timeout=self._connect_timeout,
                )
                self._listening.add(channel)
            except DRIVER_ERRORS as exc:
                logger.warning("LISTEN %s failed, retrying after reconnect: %r", channel, exc)
                conn.terminate()

    async def _unlisten(self, kind: Kind) -> None:
        channel = self._channels[kind]
        async with self._conn_lock:
            conn = self._conn
            if conn is None or channel not in self._listening or self._count[kind] > 0:
                return
            self._listening.discard(channel)
            try:
                await asyncio.wait_for(
                    conn.remove_listener(channel, self._on_notification),
                    timeout=self._connect_timeout,
                )
            except DRIVER_ERRORS as exc:
                # Still listening on a connection that does not answer: replace it.
                logger.warning("UNLISTEN %s failed, reconnecting: %r", channel, exc)
                conn.terminate()

    # -- the listening connection ----------------------------------------------

    async def _supervise(self) -> None:
        delay = self._reconnect_delay
        while not self._closed:
            try:
                conn = await self._connect()
            except Exception as exc:
                # Whatever the cause (server down, bad credentials, bad URL), keep the
                # supervisor alive: notifications are hints, and workers poll meanwhile.
                self._first_attempt_done.set()
                logger.warning(
                    "PostgreSQL listener cannot connect (retrying in %.2fs): %r", delay, exc
                )
                # Jitter keeps many processes from reconnecting in lockstep.
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self._max_reconnect_delay)
                continue
            self._first_attempt_done.set()
            delay = self._reconnect_delay
            try:
                await self._watch(conn)
            finally:
                async with self._conn_lock:
                    self._conn = None
                    self._listening.clear()
                conn.terminate()
            if not self._closed:
                logger.warning("PostgreSQL listener connection lost; reconnecting")

    async def _connect(self) -> asyncpg.Connection[Any]:
        options = dict(self._connect_options)
        query = dict(parse_qsl(urlsplit(self._dsn).query))
        if "application_name" not in query:
            settings = dict(options.pop("server_settings", None) or {})
            settings["application_name"] = self._application_name
            options["server_settings"] = settings
        conn: asyncpg.Connection[Any] = await asyncpg.connect(
            self._dsn, timeout=self._connect_timeout, **options
        )
        try:
            async with self._conn_lock:
                for kind, channel in self._channels.items():
                    if self._count[kind] > 0:
                        await asyncio.wait_for(
                            conn.add_listener(channel, self._on_notification),
                            timeout=self._connect_timeout,
                        )
                        self._listening.add(channel)
                self._conn = conn
        except BaseException:
            self._listening.clear()
            conn.terminate()
            raise
        return conn

    async def _watch(self, conn: asyncpg.Connection[Any]) -> None:
        """Return when ``conn`` is closed or stops answering pings."""
        lost = asyncio.Event()

        def on_termination(_: _AnyConnection) -> None:
            lost.set()

        conn.add_termination_listener(on_termination)
        while not conn.is_closed():
            try:
                await asyncio.wait_for(lost.wait(), timeout=self._ping_interval)
                return
            except TimeoutError:
                pass
            # A dead peer that never closed the socket is only noticed by talking to it.
            try:
                async with self._conn_lock:
                    await asyncio.wait_for(conn.execute("SELECT 1"), timeout=self._connect_timeout)
            except DRIVER_ERRORS:
                return

    def _on_notification(
        self, _conn: _AnyConnection, _pid: int, channel: str, payload: object
    ) -> None:
        kind = self._kinds.get(channel)
        if kind is None or not isinstance(payload, str):
            return
        decoded = payloads.decode(payload, counted=kind == "scheduled")
        if decoded is None:
            logger.debug("ignoring malformed notification %r on %s", payload, channel)
            return
        count, key, hashed = decoded
        targets: list[tuple[_Subscription, str]] = []
        if hashed:
            for sub in self._by_hash[kind].get(key, ()):
                targets.extend((sub, k) for k in sub.keys or () if payloads.key_hash(k) == key)
        else:
            targets.extend((sub, key) for sub in self._by_key[kind].get(key, ()))
            targets.extend((sub, key) for sub in self._any[kind])
        for sub, target_key in targets:
            arg: Any = target_key
            if kind == "scheduled":
                arg = ScheduledSignal(queue=target_key, count=count)
            task = asyncio.get_running_loop().create_task(self._deliver(sub, arg))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, sub: _Subscription, arg: Any) -> None:
        if not sub.active:
            return
        try:
            await sub.listener(arg)
        except Exception:
            logger.exception("queuert notification listener %r failed", sub.listener)

    # -- closing ---------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for kind in _SUFFIXES:
            for sub in self._any[kind]:
                sub.active = False
            for subs in self._by_key[kind].values():
                for sub in subs:
                    sub.active = False
            self._any[kind].clear()
            self._by_key[kind].clear()
            self._by_hash[kind].clear()
            self._count[kind] = 0
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()
        if self._sync_publisher is not None:
            # On a thread: it may wait for a synchronous publish under way.
            await asyncio.to_thread(self._sync_publisher.close)
        for task in list(self._deliveries):
            task.cancel()
        await self._publisher.close()
        if self._owns_publish_pool and self._publish_pool is not None:
            pool, self._publish_pool = self._publish_pool, None
            with contextlib.suppress(*DRIVER_ERRORS):
                await asyncio.wait_for(pool.close(), timeout=self._connect_timeout)


def _ignore_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: a publish that was given up is not reported twice


async def _no_reset(_conn: asyncpg.Connection[Any]) -> None:
    pass


def _discard(index: dict[str, list[_Subscription]], key: str, sub: _Subscription) -> None:
    subs = index.get(key)
    if subs is not None:
        with contextlib.suppress(ValueError):
            subs.remove(sub)
        if not subs:
            del index[key]


async def from_url(url: str) -> PostgresNotifyAdapter:
    """Entry point of the ``postgresql`` and ``postgres`` schemes of ``queuert.notify``:
    see :meth:`PostgresNotifyAdapter.from_url`."""
    return await PostgresNotifyAdapter.from_url(url)
