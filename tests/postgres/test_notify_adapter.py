"""PostgreSQL-specific behaviour of the LISTEN/NOTIFY notify adapter: recovery of the
listening connection, publishing while the server is unreachable, payload limits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from queuert.errors import ConfigurationError
from queuert.ports.notify import ScheduledSignal
from queuert.urls import notify_from_url
from queuert_postgres import PostgresNotifyAdapter
from tests.postgres.conftest import unique_name

WAIT_S = 10.0


class Inbox:
    """Records what a listener receives."""

    def __init__(self) -> None:
        self.items: list[object] = []
        self.changed = asyncio.Event()

    async def __call__(self, item: object) -> None:
        self.items.append(item)
        self.changed.set()


async def deliver_until_received(publish: object, inbox: Inbox, *, what: str) -> None:
    """Publish again and again until ``inbox`` receives something: the listener may
    still be reconnecting, and notifications sent meanwhile are lost."""
    assert callable(publish)
    deadline = time.monotonic() + WAIT_S
    while not inbox.items:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {WAIT_S}s waiting for {what}")
        await publish()
        inbox.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(inbox.changed.wait(), timeout=0.1)


async def listener_pids(url: str, application_name: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1", application_name
        )
        return [row[0] for row in rows]
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def notify(postgres_url: str) -> AsyncIterator[PostgresNotifyAdapter]:
    adapter = PostgresNotifyAdapter(
        postgres_url,
        channel_prefix=unique_name("ch"),
        application_name=unique_name("listener"),
        reconnect_delay=0.02,
        max_reconnect_delay=0.2,
    )
    yield adapter
    await adapter.close()


async def test_listener_reconnects_after_its_backend_is_terminated(
    notify: PostgresNotifyAdapter, postgres_url: str
) -> None:
    inbox = Inbox()
    await notify.subscribe_job_scheduled(queues=["images"], listener=inbox)
    [pid] = await listener_pids(postgres_url, notify.application_name)

    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()

    await deliver_until_received(
        lambda: notify.publish_job_scheduled(queue="images", count=2),
        inbox,
        what="a notification after the listener was terminated",
    )
    assert inbox.items[0] == ScheduledSignal(queue="images", count=2)
    [new_pid] = await listener_pids(postgres_url, notify.application_name)
    assert new_pid != pid


async def test_publishing_while_the_listener_is_down_does_not_raise(
    notify: PostgresNotifyAdapter, postgres_url: str
) -> None:
    inbox = Inbox()
    await notify.subscribe_chain_completed(chain_id=None, listener=inbox)
    [pid] = await listener_pids(postgres_url, notify.application_name)
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()

    for _ in range(5):
        await notify.publish_chain_completed(chain_id="chain-1")

    await deliver_until_received(
        lambda: notify.publish_chain_completed(chain_id="chain-2"),
        inbox,
        what="a chain-completed notification after reconnecting",
    )


async def test_unreachable_server_logs_instead_of_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    adapter = PostgresNotifyAdapter(
        "postgresql://postgres@127.0.0.1:1/postgres", connect_timeout=1.0
    )
    try:
        with caplog.at_level(logging.WARNING, logger="queuert_postgres"):
            await adapter.publish_job_scheduled(queue="q", count=1)
            await adapter.publish_chain_completed(chain_id="c")
            await adapter.publish_lease_lost(job_id="j")
            subscription = await adapter.subscribe_lease_lost(job_id=None, listener=Inbox())
            await subscription.unsubscribe()
        assert any("not sent" in record.getMessage() for record in caplog.records)
    finally:
        await adapter.close()
        await adapter.close()


async def test_queue_names_beyond_the_payload_limit_still_arrive(
    notify: PostgresNotifyAdapter,
) -> None:
    long_queue = "q" * 9000
    inbox = Inbox()
    other = Inbox()
    await notify.subscribe_job_scheduled(queues=[long_queue], listener=inbox)
    await notify.subscribe_job_scheduled(queues=["short"], listener=other)

    await notify.publish_job_scheduled(queue=long_queue, count=3)

    await asyncio.wait_for(inbox.changed.wait(), timeout=WAIT_S)
    assert inbox.items == [ScheduledSignal(queue=long_queue, count=3)]
    assert other.items == []


async def test_unsubscribed_channel_stops_delivering(notify: PostgresNotifyAdapter) -> None:
    first, second = Inbox(), Inbox()
    subscription = await notify.subscribe_lease_lost(job_id="job-1", listener=first)
    await notify.subscribe_lease_lost(job_id=None, listener=second)
    await subscription.unsubscribe()
    await subscription.unsubscribe()

    await notify.publish_lease_lost(job_id="job-1")

    await asyncio.wait_for(second.changed.wait(), timeout=WAIT_S)
    assert second.items == ["job-1"]
    assert first.items == []


async def test_from_url_names_channels_after_the_schema(postgres_url: str) -> None:
    separator = "&" if "?" in postgres_url else "?"
    adapter = await notify_from_url(f"{postgres_url}{separator}schema=billing&max_size=3")
    assert isinstance(adapter, PostgresNotifyAdapter)
    try:
        assert adapter.channels == (
            "billing_job_scheduled",
            "billing_chain_completed",
            "billing_lease_lost",
        )
    finally:
        await adapter.close()
    adapter = await notify_from_url(
        postgres_url.replace("postgresql://", "postgres://", 1) + f"{separator}channel_prefix=x"
    )
    assert isinstance(adapter, PostgresNotifyAdapter)
    await adapter.close()


@pytest.mark.parametrize("prefix", ["Upper", "a-b", "x" * 60])
def test_invalid_channel_prefix_is_rejected_by_name(prefix: str) -> None:
    with pytest.raises(ConfigurationError, match="channel prefix"):
        PostgresNotifyAdapter("postgresql://localhost/db", channel_prefix=prefix)
