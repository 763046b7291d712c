"""Configuring the adapter by URL."""

from __future__ import annotations

import pytest

from queuert.errors import ConfigurationError
from queuert_redis_notify import RedisNotifyAdapter, from_url


async def test_prefix_and_defaults() -> None:
    adapter = await from_url("redis://127.0.0.1:6379/0")
    custom = await from_url("rediss://cache.example:6380/2?prefix=billing:&socket_timeout=3")
    try:
        assert isinstance(adapter, RedisNotifyAdapter)
        assert adapter.prefix == "queuert:"
        assert custom.prefix == "billing:"
        assert adapter.capabilities.cross_process
        assert adapter.capabilities.wake_hints
    finally:
        await adapter.close()
        await custom.close()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:6379", "http://127.0.0.1:6379"),
        ("redis://127.0.0.1:notaport/0", "redis://127.0.0.1:notaport/0"),
        ("redis://127.0.0.1:6379/0?hint_ttl=soon", "soon"),
        ("redis://127.0.0.1:6379/0?hint_ttl=0", "redis://127.0.0.1:6379/0?hint_ttl=0"),
        ("redis://127.0.0.1:6379/0?prefix=", "redis://127.0.0.1:6379/0?prefix="),
        ("redis:///0", "redis:///0"),
    ],
)
async def test_bad_urls_name_the_value(url: str, shown: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        await from_url(url)
    assert shown in str(raised.value)


async def test_password_is_not_shown_in_errors() -> None:
    with pytest.raises(ConfigurationError) as raised:
        await from_url("redis://user:s3cret@127.0.0.1:6379/0?hint_ttl=-1")
    assert "s3cret" not in str(raised.value)
    assert "user:***@127.0.0.1:6379" in str(raised.value)
