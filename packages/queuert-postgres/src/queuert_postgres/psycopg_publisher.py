"""Publishing :class:`~queuert_postgres.PostgresNotifyAdapter`'s signals from
synchronous code (:mod:`queuert.sync`) over a blocking psycopg connection of its
own (the ``psycopg`` extra): the same channels and payloads as the asynchronous
publisher, so the workers' listeners hear them.

Used for what the state adapter's writes do not carry themselves: lease-lost
signals of a cancel, and every signal when the notifier is on another database
than the state adapter."""

from __future__ import annotations

import contextlib
import logging
import math
import threading

import psycopg

from queuert.ports.sync import SyncPublisher
from queuert_postgres import payloads
from queuert_postgres.psycopg_sync import watchdog

logger = logging.getLogger("queuert.notify")

_NOTIFY = "SELECT pg_notify(%s, %s)"


class PostgresSyncPublisher(SyncPublisher):
    """Signals sent with ``pg_notify`` on one autocommit psycopg connection to
    ``dsn``, opened when first needed (within ``connect_timeout`` seconds) and
    reopened after a failure. A statement may take ``publish_timeout`` seconds,
    then it is cancelled. Failures are logged, never raised: workers poll.
    Thread-safe: publishes take turns on the connection."""

    def __init__(
        self,
        dsn: str,
        *,
        channels: tuple[str, str, str],
        application_name: str,
        connect_timeout: float,
        publish_timeout: float,
    ) -> None:
        self._dsn = dsn
        self._scheduled, self._completed, self._lease_lost = channels
        self._application_name = application_name
        self._connect_timeout = max(1, math.ceil(connect_timeout))
        self._publish_timeout = publish_timeout
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._closed = False

    def publish_job_scheduled(self, *, queue: str, count: int) -> None:
        self._send(self._scheduled, payloads.encode(queue, count=count))

    def publish_chain_completed(self, *, chain_id: str) -> None:
        self._send(self._completed, payloads.encode(chain_id))

    def publish_lease_lost(self, *, job_id: str) -> None:
        self._send(self._lease_lost, payloads.encode(job_id))

    def _send(self, channel: str, payload: str) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                conn = self._connection()
                alarm = watchdog.arm(self._publish_timeout, conn.cancel_safe)
                try:
                    conn.execute(_NOTIFY, (channel, payload))
                finally:
                    watchdog.disarm(alarm)
            except (psycopg.Error, OSError) as exc:
                logger.warning("PostgreSQL notification on %s not sent: %r", channel, exc)
                self._drop()

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self._dsn,
                autocommit=True,
                connect_timeout=self._connect_timeout,
                application_name=self._application_name,
            )
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop()
