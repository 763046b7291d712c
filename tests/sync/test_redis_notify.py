"""Signals of the synchronous API through Redis: published by redis-py's blocking
client after the application's commit, heard by the asynchronous adapter's
subscribers, with the same wake budget."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

import queuert
from queuert.sync import SyncClient
from queuert_redis_notify import from_url
from tests.servers import require_redis
from tests.sync.conftest import SyncBackend
from tests.waiting import eventually


@dataclass
class Mail:
    to: str


mail_chain = queuert.chain("sync-mail", input=Mail, output=Mail)


async def test_signals_reach_async_subscribers_after_commit(backend: SyncBackend) -> None:
    if backend.path is None:
        pytest.skip("one backend is enough: the publisher does not depend on it")
    redis_url = require_redis()
    prefix = f"queuert-test:{uuid.uuid4().hex}:"
    notify_url = f"{redis_url}?prefix={prefix}"
    client = SyncClient.from_url(
        chains=[mail_chain], state=f"sqlite:///{backend.path}", notify=notify_url
    )
    listener = await from_url(notify_url)
    heard: list[queuert.ScheduledSignal] = []
    completed: list[str] = []

    async def on_scheduled(signal: queuert.ScheduledSignal) -> None:
        heard.append(signal)

    async def on_completed(chain_id: str) -> None:
        completed.append(chain_id)

    scheduled = await listener.subscribe_job_scheduled(
        queues=[mail_chain.name], listener=on_scheduled
    )
    ended = await listener.subscribe_chain_completed(chain_id=None, listener=on_completed)

    class Undo(Exception):
        pass

    def run() -> str:
        with pytest.raises(Undo), client.with_notify(), backend.transaction() as conn:
            client.enqueue_job_chain(conn, mail_chain, Mail("dropped"))
            raise Undo
        with client.with_notify(), backend.transaction() as conn:
            handles = client.enqueue_job_chains(conn, mail_chain, [Mail("a"), Mail("b")])
            client.cancel_chain(conn, handles[0].id)
        return handles[0].id

    try:
        cancelled = await asyncio.to_thread(run)
        await eventually(lambda: bool(heard) and bool(completed), timeout=10)
        assert [signal.count for signal in heard] == [2]
        assert completed == [cancelled]
        # The wake budget was stored with the signal: two claims, then no more.
        claims = [await listener.claim_wake(signal=heard[0]) for _ in range(3)]
        assert claims == [True, True, False]
    finally:
        await scheduled.unsubscribe()
        await ended.unsubscribe()
        await listener.close()
        await asyncio.to_thread(client.close)
        cleanup = Redis.from_url(redis_url, decode_responses=True)
        keys = [key async for key in cleanup.scan_iter(match=f"{prefix}*")]
        if keys:
            await cleanup.delete(*keys)
        await cleanup.aclose()
