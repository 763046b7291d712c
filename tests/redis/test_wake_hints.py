"""Wake hints: N scheduled jobs wake about N listeners across processes."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from queuert.ports.notify import ScheduledSignal
from queuert_redis_notify import RedisNotifyAdapter
from tests.redis.conftest import AdapterFactory
from tests.waiting import eventually


async def _next_signal(
    adapter: RedisNotifyAdapter, publisher: RedisNotifyAdapter, queue: str, count: int
) -> ScheduledSignal:
    received: asyncio.Queue[ScheduledSignal] = asyncio.Queue()

    async def listener(signal: ScheduledSignal) -> None:
        received.put_nowait(signal)

    subscription = await adapter.subscribe_job_scheduled(queues=[queue], listener=listener)
    await publisher.publish_job_scheduled(queue=queue, count=count)
    async with asyncio.timeout(5):
        signal = await received.get()
    await subscription.unsubscribe()
    return signal


async def test_concurrent_claimers_on_two_instances_get_exactly_count_wakes(
    make_adapter: AdapterFactory,
) -> None:
    first, second = await make_adapter(), await make_adapter()
    signal = await _next_signal(first, second, "q", 5)
    assert signal.count == 5

    claims = [first.claim_wake(signal=signal) for _ in range(12)]
    claims += [second.claim_wake(signal=signal) for _ in range(12)]
    results = await asyncio.gather(*claims)

    assert results.count(True) == 5
    assert await first.claim_wake(signal=signal) is False


async def test_each_publish_has_its_own_budget(make_adapter: AdapterFactory) -> None:
    adapter = await make_adapter()
    one = await _next_signal(adapter, adapter, "q", 1)
    other = await _next_signal(adapter, adapter, "q", 1)
    assert one.hint != other.hint

    assert [await adapter.claim_wake(signal=one) for _ in range(2)] == [True, False]
    assert await adapter.claim_wake(signal=other) is True


async def test_missing_hint_wakes(make_adapter: AdapterFactory) -> None:
    adapter = await make_adapter()
    never_stored = ScheduledSignal(queue="q", count=1, hint="0123456789abcdef")
    no_hint = ScheduledSignal(queue="q", count=1)

    assert await adapter.claim_wake(signal=never_stored) is True
    assert await adapter.claim_wake(signal=never_stored) is True
    assert await adapter.claim_wake(signal=no_hint) is True


async def test_expired_hint_wakes(make_adapter: AdapterFactory, prefix: str, redis: Redis) -> None:
    adapter = await make_adapter(query="hint_ttl=0.2")
    signal = await _next_signal(adapter, adapter, "q", 1)
    assert await adapter.claim_wake(signal=signal) is True
    assert await adapter.claim_wake(signal=signal) is False

    async def expired() -> bool:
        return await redis.exists(f"{prefix}hint:{signal.hint}") == 0

    await eventually(expired, message="hint did not expire")
    assert await adapter.claim_wake(signal=signal) is True
