"""Signals between adapter instances, listener isolation, shared connection, close."""

from __future__ import annotations

import logging

import pytest
from redis.asyncio import Redis

from queuert.errors import AdapterError, ValidationError
from queuert.ports.notify import ScheduledSignal
from tests.redis.conftest import AdapterFactory
from tests.waiting import eventually


async def test_job_scheduled_reaches_another_instance_with_count_and_hint(
    make_adapter: AdapterFactory,
) -> None:
    publisher, listener_side = await make_adapter(), await make_adapter()
    received: list[ScheduledSignal] = []

    async def listener(signal: ScheduledSignal) -> None:
        received.append(signal)

    await listener_side.subscribe_job_scheduled(
        queues=["resize", "resize:store"], listener=listener
    )
    await publisher.publish_job_scheduled(queue="resize:store", count=3)

    await eventually(lambda: len(received) == 1, message="job-scheduled signal not delivered")
    assert received[0].queue == "resize:store"
    assert received[0].count == 3
    assert received[0].hint


async def test_id_signals_are_filtered_by_id(make_adapter: AdapterFactory) -> None:
    publisher, listener_side = await make_adapter(), await make_adapter()
    one_chain: list[str] = []
    any_chain: list[str] = []
    any_lease: list[str] = []

    async def on_one(chain_id: str) -> None:
        one_chain.append(chain_id)

    async def on_any(chain_id: str) -> None:
        any_chain.append(chain_id)

    async def on_lease(job_id: str) -> None:
        any_lease.append(job_id)

    await listener_side.subscribe_chain_completed(chain_id="chain-b", listener=on_one)
    await listener_side.subscribe_chain_completed(chain_id=None, listener=on_any)
    await listener_side.subscribe_lease_lost(job_id=None, listener=on_lease)

    await publisher.publish_chain_completed(chain_id="chain-a")
    await publisher.publish_chain_completed(chain_id="chain-b")
    await publisher.publish_lease_lost(job_id="job-1")

    await eventually(lambda: sorted(any_chain) == ["chain-a", "chain-b"])
    await eventually(lambda: any_lease == ["job-1"])
    assert one_chain == ["chain-b"]


async def test_a_failing_listener_does_not_stop_the_others(
    make_adapter: AdapterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = await make_adapter()
    healthy: list[str] = []
    failing_calls: list[str] = []

    async def failing(job_id: str) -> None:
        failing_calls.append(job_id)
        raise RuntimeError("listener bug")

    async def ok(job_id: str) -> None:
        healthy.append(job_id)

    await adapter.subscribe_lease_lost(job_id=None, listener=failing)
    await adapter.subscribe_lease_lost(job_id=None, listener=ok)

    with caplog.at_level(logging.ERROR, logger="queuert.notify"):
        await adapter.publish_lease_lost(job_id="job-1")
        await adapter.publish_lease_lost(job_id="job-2")
        await eventually(lambda: sorted(healthy) == ["job-1", "job-2"])
        await eventually(lambda: len(failing_calls) == 2)
        await eventually(lambda: len(_listener_failures(caplog)) == 2)
    assert all(record.name == "queuert.notify" for record in _listener_failures(caplog))


def _listener_failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.exc_info and isinstance(record.exc_info[1], RuntimeError)
    ]


async def test_unsubscribe_stops_delivery_and_is_idempotent(make_adapter: AdapterFactory) -> None:
    adapter = await make_adapter()
    first: list[str] = []
    second: list[str] = []

    async def on_first(chain_id: str) -> None:
        first.append(chain_id)

    async def on_second(chain_id: str) -> None:
        second.append(chain_id)

    subscription = await adapter.subscribe_chain_completed(chain_id=None, listener=on_first)
    await adapter.subscribe_chain_completed(chain_id=None, listener=on_second)
    await subscription.unsubscribe()
    await subscription.unsubscribe()

    await adapter.publish_chain_completed(chain_id="c1")
    await eventually(lambda: second == ["c1"])
    assert first == []


async def test_listeners_share_one_subscriber_connection(
    make_adapter: AdapterFactory, redis: Redis, prefix: str
) -> None:
    adapter = await make_adapter()

    async def on_signal(signal: ScheduledSignal) -> None:
        return None

    async def on_id(value: str) -> None:
        return None

    for _ in range(3):
        await adapter.subscribe_job_scheduled(queues=["q"], listener=on_signal)
        await adapter.subscribe_chain_completed(chain_id=None, listener=on_id)

    counts = dict(await redis.pubsub_numsub(f"{prefix}scheduled:q", f"{prefix}chain_completed"))
    assert counts == {f"{prefix}scheduled:q": 1, f"{prefix}chain_completed": 1}


async def test_last_unsubscribe_leaves_the_channel(
    make_adapter: AdapterFactory, redis: Redis, prefix: str
) -> None:
    adapter = await make_adapter()

    async def on_signal(signal: ScheduledSignal) -> None:
        return None

    subscription = await adapter.subscribe_job_scheduled(queues=["q"], listener=on_signal)
    await subscription.unsubscribe()

    async def channel_left() -> bool:
        counts = dict(await redis.pubsub_numsub(f"{prefix}scheduled:q"))
        return counts[f"{prefix}scheduled:q"] == 0

    await eventually(channel_left, message="channel still subscribed")


async def test_close_is_idempotent_and_stops_delivery(
    make_adapter: AdapterFactory, redis: Redis, prefix: str
) -> None:
    publisher, adapter = await make_adapter(), await make_adapter()
    received: list[str] = []

    async def listener(job_id: str) -> None:
        received.append(job_id)

    await adapter.subscribe_lease_lost(job_id=None, listener=listener)
    await adapter.close()
    await adapter.close()

    async def channel_left() -> bool:
        counts = dict(await redis.pubsub_numsub(f"{prefix}lease_lost"))
        return counts[f"{prefix}lease_lost"] == 0

    await eventually(channel_left, message="closed adapter still subscribed")
    await publisher.publish_lease_lost(job_id="job-1")
    with pytest.raises(AdapterError):
        await adapter.subscribe_lease_lost(job_id=None, listener=listener)
    assert received == []


@pytest.mark.parametrize("count", [0, -1, True, 1.5])
async def test_job_scheduled_count_must_be_a_positive_integer(
    make_adapter: AdapterFactory, count: object
) -> None:
    adapter = await make_adapter()
    with pytest.raises(ValidationError, match=repr(count).replace(".", r"\.")):
        await adapter.publish_job_scheduled(queue="q", count=count)  # type: ignore[arg-type]
