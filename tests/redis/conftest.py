"""Fixtures for the Redis notify adapter: one key/channel prefix per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Protocol

import pytest
from redis.asyncio import Redis

from queuert_redis_notify import RedisNotifyAdapter, from_url
from tests.servers import require_redis


class AdapterFactory(Protocol):
    async def __call__(self, *, query: str = "") -> RedisNotifyAdapter: ...


@pytest.fixture
def redis_url() -> str:
    return require_redis()


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A prefix no other test uses; its keys are deleted afterwards."""
    value = f"queuert-test:{uuid.uuid4().hex}:"
    yield value
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = [key async for key in client.scan_iter(match=f"{value}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A plain client, to look at what the adapter left in Redis."""
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def make_adapter(redis_url: str, prefix: str) -> AsyncIterator[AdapterFactory]:
    """Build adapters on the test's prefix (as separate processes would);
    all are closed after the test."""
    adapters: list[RedisNotifyAdapter] = []

    async def make(*, query: str = "") -> RedisNotifyAdapter:
        separator = "&" if "?" in redis_url else "?"
        extra = f"&{query}" if query else ""
        adapter = await from_url(f"{redis_url}{separator}prefix={prefix}{extra}")
        adapters.append(adapter)
        return adapter

    yield make
    for adapter in adapters:
        await adapter.close()
