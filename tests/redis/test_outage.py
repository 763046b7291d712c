"""Redis going away and coming back, on a private redis-server process."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import pytest

from queuert.ports.notify import ScheduledSignal
from queuert_redis_notify import from_url
from tests.redis_server import RedisServer, private_redis_server
from tests.waiting import eventually


@pytest.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    async with private_redis_server() as server:
        yield server


async def test_signals_flow_again_after_redis_restarts(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    await redis_server.start()
    url = f"{redis_server.url}?prefix=outage-{uuid.uuid4().hex}:"
    listener_side, publisher = await from_url(url), await from_url(url)
    try:
        lost: list[str] = []
        scheduled: list[ScheduledSignal] = []

        async def on_lease_lost(job_id: str) -> None:
            lost.append(job_id)

        async def on_scheduled(signal: ScheduledSignal) -> None:
            scheduled.append(signal)

        await listener_side.subscribe_lease_lost(job_id=None, listener=on_lease_lost)
        await publisher.publish_lease_lost(job_id="before")
        await eventually(lambda: lost == ["before"])

        await redis_server.stop()

        with caplog.at_level(logging.WARNING, logger="queuert.notify"):
            # Nothing raises while Redis is down.
            await publisher.publish_lease_lost(job_id="while-down")
            await publisher.publish_job_scheduled(queue="q", count=1)
            await publisher.publish_chain_completed(chain_id="c")
            hinted = ScheduledSignal(queue="q", count=1, hint="some-hint")
            assert await publisher.claim_wake(signal=hinted) is True
            # Subscribing while down returns; the channel is subscribed on reconnect.
            async with asyncio.timeout(5):
                await listener_side.subscribe_job_scheduled(queues=["q"], listener=on_scheduled)
        assert any("publish failed" in record.getMessage() for record in caplog.records)

        await redis_server.start()

        async def delivered_again() -> bool:
            await publisher.publish_lease_lost(job_id="after")
            await publisher.publish_job_scheduled(queue="q", count=1)
            return "after" in lost and bool(scheduled)

        await eventually(
            delivered_again, timeout=15, interval=0.1, message="no signal after restart"
        )
        assert "while-down" not in lost
    finally:
        await listener_side.close()
        await publisher.close()


async def test_adapter_started_while_redis_is_down_works_once_it_is_up(
    redis_server: RedisServer,
) -> None:
    url = f"{redis_server.url}?prefix=late-{uuid.uuid4().hex}:"
    listener_side, publisher = await from_url(url), await from_url(url)
    try:
        completed: list[str] = []

        async def on_completed(chain_id: str) -> None:
            completed.append(chain_id)

        async with asyncio.timeout(5):
            await listener_side.subscribe_chain_completed(chain_id=None, listener=on_completed)
            await publisher.publish_chain_completed(chain_id="nobody-hears-this")

        await redis_server.start()

        async def delivered() -> bool:
            await publisher.publish_chain_completed(chain_id="chain-1")
            return "chain-1" in completed

        await eventually(delivered, timeout=15, interval=0.1, message="no signal once Redis is up")
    finally:
        await listener_side.close()
        await publisher.close()
