"""Choosing adapters by URL through installed entry points."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Sequence
from importlib.metadata import EntryPoint, PackageNotFoundError

import pytest

from queuert import urls
from queuert.errors import ConfigurationError
from queuert.ports.notify import (
    IdListener,
    NotifyAdapter,
    ScheduledListener,
    Subscription,
)
from queuert.urls import (
    notify_from_url,
    notify_url_from_env,
    state_from_url,
    state_url_from_env,
)
from tests.servers import require_redis


class _SilentNotify(NotifyAdapter):
    """A notify adapter that drops everything, built by a class-level factory."""

    def __init__(self, url: str) -> None:
        self.url = url

    @classmethod
    async def from_url(cls, url: str) -> _SilentNotify:
        return cls(url)

    async def publish_job_scheduled(self, *, queue: str, count: int) -> None:
        return None

    async def publish_chain_completed(self, *, chain_id: str) -> None:
        return None

    async def publish_lease_lost(self, *, job_id: str) -> None:
        return None

    async def subscribe_job_scheduled(
        self, *, queues: Sequence[str], listener: ScheduledListener
    ) -> Subscription:
        raise NotImplementedError

    async def subscribe_chain_completed(
        self, *, chain_id: str | None, listener: IdListener
    ) -> Subscription:
        raise NotImplementedError

    async def subscribe_lease_lost(
        self, *, job_id: str | None, listener: IdListener
    ) -> Subscription:
        raise NotImplementedError

    async def close(self) -> None:
        return None


async def silent_from_url(url: str) -> _SilentNotify:
    return _SilentNotify(url)


class _BareClass:
    """An entry point naming a class that has no from_url factory."""


def not_an_adapter(url: str) -> str:
    return url


def _install(monkeypatch: pytest.MonkeyPatch, *entries: EntryPoint) -> None:
    """Pretend that exactly ``entries`` are installed (and no distribution)."""

    def fake_entry_points(*, group: str) -> list[EntryPoint]:
        return [entry for entry in entries if entry.group == group]

    def fake_distribution(name: str) -> object:
        raise PackageNotFoundError(name)

    monkeypatch.setattr(urls, "entry_points", fake_entry_points)
    monkeypatch.setattr(urls, "distribution", fake_distribution)


def _notify_entry(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group="queuert.notify")


@pytest.mark.parametrize(
    ("url", "distribution"),
    [
        ("postgresql://app@db.internal/jobs", "queuert-postgres"),
        ("postgres://app@db.internal/jobs", "queuert-postgres"),
        ("sqlite:///jobs.db", "queuert-sqlite"),
        ("mongodb+srv://cluster.example/jobs", "queuert-mongodb"),
    ],
)
async def test_scheme_without_installed_adapter_names_the_distribution(
    monkeypatch: pytest.MonkeyPatch, url: str, distribution: str
) -> None:
    _install(monkeypatch)
    with pytest.raises(ConfigurationError) as raised:
        await state_from_url(url)
    message = str(raised.value)
    assert f"pip install {distribution}" in message
    assert url in message


async def test_notify_scheme_without_installed_adapter_names_the_distribution(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _install(monkeypatch)
    with pytest.raises(ConfigurationError, match="pip install queuert-redis-notify"):
        await notify_from_url("rediss://cache.example:6380/0")


async def test_unknown_scheme_lists_installed_schemes(monkeypatch: pytest.MonkeyPatch) -> None:
    _install(
        monkeypatch,
        _notify_entry("silent", f"{__name__}:silent_from_url"),
        _notify_entry("quiet", f"{__name__}:silent_from_url"),
    )
    with pytest.raises(ConfigurationError) as raised:
        await notify_from_url("carrier-pigeon://loft/1")
    message = str(raised.value)
    assert "'carrier-pigeon'" in message
    assert "quiet, silent" in message


async def test_installed_schemes_are_listed_from_real_entry_points() -> None:
    with pytest.raises(ConfigurationError) as raised:
        await notify_from_url("carrier-pigeon://loft/1")
    assert "redis, rediss" in str(raised.value)


async def test_notify_scheme_given_as_state_url_says_so() -> None:
    with pytest.raises(ConfigurationError, match="selects a notify adapter"):
        await state_from_url("redis://127.0.0.1:6379/0")


@pytest.mark.parametrize(
    "url", ["jobs.db", "C:\\jobs.db", "localhost:5432", "://host/db", "9ftp://host", "   "]
)
async def test_malformed_url_is_named(url: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        await state_from_url(url)
    assert repr(url) in str(raised.value)


async def test_state_url_must_be_a_string() -> None:
    with pytest.raises(ConfigurationError, match=re.escape("b'sqlite:///jobs.db'")):
        await state_from_url(b"sqlite:///jobs.db")  # type: ignore[arg-type]


async def test_password_is_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    _install(monkeypatch)
    with pytest.raises(ConfigurationError) as raised:
        await state_from_url("postgresql://app:hunter2@db.internal:5432/jobs")
    assert "hunter2" not in str(raised.value)
    assert "postgresql://app:***@db.internal:5432/jobs" in str(raised.value)


@pytest.mark.parametrize("url", ["", "none", "NONE", " none "])
async def test_no_notifier_means_polling(url: str) -> None:
    assert await notify_from_url(url) is None


async def test_no_url_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUEUERT_NOTIFY_URL", raising=False)
    monkeypatch.delenv("QUEUERT_STATE_URL", raising=False)
    assert await notify_from_url() is None
    with pytest.raises(ConfigurationError, match="QUEUERT_STATE_URL is not set"):
        await state_from_url()

    monkeypatch.setenv("QUEUERT_NOTIFY_URL", "none")
    assert await notify_from_url(None) is None

    monkeypatch.setenv("QUEUERT_NOTIFY_URL", "carrier-pigeon://loft")
    monkeypatch.setenv("QUEUERT_STATE_URL", "carrier-pigeon://loft")
    with pytest.raises(ConfigurationError, match="carrier-pigeon://loft"):
        await notify_from_url()
    with pytest.raises(ConfigurationError, match="carrier-pigeon://loft"):
        await state_from_url()


async def test_factory_and_class_entry_points_build_adapters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _install(
        monkeypatch,
        _notify_entry("silent", f"{__name__}:silent_from_url"),
        _notify_entry("silentclass", f"{__name__}:_SilentNotify"),
    )
    by_function = await notify_from_url("silent://here")
    by_class = await notify_from_url("SilentClass://there")
    assert isinstance(by_function, _SilentNotify)
    assert by_function.url == "silent://here"
    assert isinstance(by_class, _SilentNotify)
    assert by_class.url == "SilentClass://there"


async def test_broken_entry_points_are_configuration_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _install(
        monkeypatch,
        _notify_entry("missing", "queuert_no_such_module:from_url"),
        _notify_entry("wrong", f"{__name__}:not_an_adapter"),
        _notify_entry("bareclass", f"{__name__}:_BareClass"),
    )
    with pytest.raises(ConfigurationError, match="cannot be imported"):
        await notify_from_url("missing://x")
    with pytest.raises(ConfigurationError, match="not a NotifyAdapter"):
        await notify_from_url("wrong://x")
    with pytest.raises(ConfigurationError, match=r"_BareClass\) is not an async from_url"):
        await notify_from_url("bareclass://x")


def test_urls_from_environment() -> None:
    assert state_url_from_env({"QUEUERT_STATE_URL": " sqlite:///jobs.db "}) == "sqlite:///jobs.db"
    assert notify_url_from_env({"QUEUERT_NOTIFY_URL": "redis://h:6379/0"}) == "redis://h:6379/0"
    assert notify_url_from_env({"QUEUERT_NOTIFY_URL": "none"}) is None
    assert notify_url_from_env({}) is None
    with pytest.raises(ConfigurationError, match="QUEUERT_STATE_URL"):
        state_url_from_env({})


async def test_redis_url_resolves_to_the_redis_adapter() -> None:
    from queuert_redis_notify import RedisNotifyAdapter

    redis_url = require_redis()
    prefix = f"queuert-urls-test:{uuid.uuid4().hex}:"
    separator = "&" if "?" in redis_url else "?"
    adapter = await notify_from_url(f"{redis_url}{separator}prefix={prefix}")
    try:
        assert isinstance(adapter, RedisNotifyAdapter)
        assert adapter.prefix == prefix
        received: asyncio.Queue[str] = asyncio.Queue()

        async def listener(job_id: str) -> None:
            received.put_nowait(job_id)

        await adapter.subscribe_lease_lost(job_id=None, listener=listener)
        await adapter.publish_lease_lost(job_id="job-1")
        async with asyncio.timeout(5):
            assert await received.get() == "job-1"
    finally:
        if adapter is not None:
            await adapter.close()
