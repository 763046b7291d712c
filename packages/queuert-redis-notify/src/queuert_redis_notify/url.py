"""Build a :class:`RedisNotifyAdapter` from a URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.retry import Retry as SyncRetry

from queuert.errors import ConfigurationError
from queuert.urls import redact_message, redact_url
from queuert_redis_notify.adapter import DEFAULT_HINT_TTL, DEFAULT_PREFIX, RedisNotifyAdapter

SCHEMES = ("redis", "rediss")

_CLIENT_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 2.0,
    "socket_timeout": 5.0,
    # A peer that vanished without closing (half-open) is found by TCP keepalive,
    # and by a PING before a command on a connection idle longer than the interval.
    "socket_keepalive": True,
    "health_check_interval": 15,
}


async def from_url(url: str) -> RedisNotifyAdapter:
    """``redis://[user:password@]host[:port][/db][?prefix=...&hint_ttl=...]``
    (``rediss://`` for TLS).

    ``prefix`` (default ``"queuert:"``) names every channel and key;
    ``hint_ttl`` is the lifetime of wake hints in seconds (default 60). Other
    query parameters are passed to redis-py (``socket_timeout``, ...). The client
    gets socket timeouts (connect 2 s, commands 5 s), TCP keepalive and a health
    check (PING) on connections idle for 15 s.

    Does not connect: an unreachable Redis only delays wake-ups. Raises
    :class:`~queuert.errors.ConfigurationError` naming the URL when it cannot
    be used.
    """
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise ConfigurationError(
                f"redis notify URL must start with redis:// or rediss://, got {shown!r}"
            )
        if not parts.hostname:
            raise ConfigurationError(f"redis notify URL {shown!r} names no host")
        prefix = DEFAULT_PREFIX
        hint_ttl = DEFAULT_HINT_TTL
        passed: list[tuple[str, str]] = []
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name == "prefix":
                prefix = value
            elif name == "hint_ttl":
                hint_ttl = _seconds(value, shown)
            else:
                passed.append((name, value))
        client_url = urlunsplit(parts._replace(query=urlencode(passed)))
        client = Redis.from_url(
            client_url,
            decode_responses=True,
            # Notifications are hints: fail fast and let workers poll rather
            # than stall a publisher on a Redis that is down.
            retry=Retry(NoBackoff(), 1),
            **_CLIENT_OPTIONS,
        )
        # For synchronous publishers (queuert.sync); connects when first used.
        sync_client = redis.Redis.from_url(
            client_url, decode_responses=True, retry=SyncRetry(NoBackoff(), 1), **_CLIENT_OPTIONS
        )
    except ConfigurationError:
        raise
    except (ValueError, TypeError) as exc:
        # The client's message may quote the URL: redact it, and do not chain it.
        raise ConfigurationError(
            f"invalid redis notify URL {shown!r}: {redact_message(str(exc), url)}"
        ) from None
    try:
        return RedisNotifyAdapter(
            client, prefix=prefix, hint_ttl=hint_ttl, close_client=True, sync_client=sync_client
        )
    except ConfigurationError as exc:
        await client.aclose()
        sync_client.close()
        raise ConfigurationError(f"invalid redis notify URL {shown!r}: {exc}") from exc


def _seconds(value: str, shown: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigurationError(
            f"hint_ttl in redis notify URL {shown!r} must be a number of seconds, got {value!r}"
        ) from None
