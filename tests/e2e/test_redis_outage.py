"""Redis, used only to wake workers, goes down in the middle of a run and comes
back: every chain still completes exactly once, and the same worker processes
are woken by notifications again afterwards."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import pytest

import queuert
from queuert.urls import notify_from_url
from tests.e2e.backends import Backend, open_backend
from tests.e2e.processes import (
    TWO_STEP,
    Step,
    WorkerGroup,
    expected_keys,
)
from tests.redis_server import RedisServer, private_redis_server
from tests.waiting import eventually

CHAINS_BEFORE = 300
CHAINS_DURING = 200
IDLE_POLL_S = 60.0
"""The workers' poll interval: longer than the test, so only notifications wake
idle workers promptly."""
PROMPT_S = 3.0


@pytest.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    async with private_redis_server() as server:
        await server.start()
        yield server


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[Backend]:
    async with open_backend("sqlite", tmp_path) as b:
        yield b


async def completed_chains(app: queuert.Queuert[object]) -> int:
    page = await app.list_chains(status="completed", limit=CHAINS_BEFORE + CHAINS_DURING)
    return len(page.items)


async def prompt(producer: queuert.Queuert[object], n: int) -> bool:
    """Whether a chain started now completes within PROMPT_S."""
    handle = await producer.enqueue_job_chain(None, TWO_STEP, Step(n))
    try:
        await producer.wait_for_chain(handle, timeout=PROMPT_S, poll_interval=0.05)
    except TimeoutError:
        return False
    return True


async def test_chains_complete_once_across_a_redis_outage(
    redis_server: RedisServer, backend: Backend, tmp_path: Path
) -> None:
    assert backend.url is not None
    notify_url = f"{redis_server.url}?prefix=e2e-outage-{uuid4().hex}:"
    producer = queuert.Queuert(
        state=backend.state, notify=await notify_from_url(notify_url), chains=[TWO_STEP]
    )
    total = CHAINS_BEFORE + CHAINS_DURING
    try:
        async with WorkerGroup(tmp_path) as group:
            workers = await group.spawn_ready(
                ["a", "b"],
                state=backend.url,
                notify=notify_url,
                poll_interval=IDLE_POLL_S,
                concurrency=4,
                # Bounds the pace of the run, so that work is still queued when Redis
                # stops and restarts, however fast the machine.
                work_ms=40,
            )
            handles = await producer.enqueue_job_chains(
                None, TWO_STEP, [Step(n) for n in range(CHAINS_BEFORE)]
            )

            async def completed_at_least(count: int) -> bool:
                return await completed_chains(producer) >= count

            await eventually(lambda: completed_at_least(50), timeout=60, interval=0.02)
            await redis_server.stop()
            # Started while Redis is down: their notifications are lost.
            handles += await producer.enqueue_job_chains(
                None, TWO_STEP, [Step(n) for n in range(CHAINS_BEFORE, total)]
            )
            await eventually(lambda: completed_at_least(250), timeout=60, interval=0.02)
            await redis_server.start()
            await eventually(
                lambda: completed_at_least(total),
                timeout=60,
                interval=0.1,
                message=f"{total} chains not completed",
            )

            # The same workers are woken by notifications again: allow their
            # subscribers time to reconnect, then every chain is picked up at once.
            deadline = time.monotonic() + 20
            n = total
            while not await prompt(producer, n):
                assert time.monotonic() < deadline, "notifications did not resume"
                n += 1
            for extra in range(2):
                assert await prompt(producer, n + 1 + extra), "notifications resumed only once"
            assert all(w.process.returncode is None for w in workers)
    finally:
        await producer.close()

    writes = await backend.app_writes()
    assert set(writes) >= expected_keys(TWO_STEP, [h.id for h in handles])
    repeated = {key: count for key, count in writes.items() if count != 1}
    assert not repeated, f"jobs finalized more than once: {repeated}"
