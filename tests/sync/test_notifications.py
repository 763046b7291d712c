"""When the synchronous API's signals leave: after the caller's commit (with_notify,
an on_commit hook, or NOTIFY inside the transaction on PostgreSQL), never for a
transaction that rolled back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

import queuert
from queuert.ports.sync import SyncPublisher
from queuert.sync import SyncClient
from tests.postgres.conftest import unique_name
from tests.sync.conftest import SyncBackend
from tests.waiting import eventually


@dataclass
class Ping:
    n: int


ping_chain = queuert.chain("sync-ping", input=Ping, output=Ping)
lease_chain = queuert.chain("sync-lease", input=Ping, output=Ping)


class Recorder(SyncPublisher):
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, int]] = []
        self.closed = 0

    def publish_job_scheduled(self, *, queue: str, count: int) -> None:
        self.sent.append(("scheduled", queue, count))

    def publish_chain_completed(self, *, chain_id: str) -> None:
        self.sent.append(("completed", chain_id, 1))

    def publish_lease_lost(self, *, job_id: str) -> None:
        self.sent.append(("lease_lost", job_id, 1))

    def close(self) -> None:
        self.closed += 1


class RecordingNotify(queuert.InProcessNotifyAdapter):
    """An in-process notifier whose synchronous publisher records what it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.recorder = Recorder()

    def sync_publisher(self) -> SyncPublisher | None:
        return self.recorder


def _app(backend: SyncBackend) -> tuple[queuert.Queuert[Any], Recorder]:
    notify = RecordingNotify()
    return queuert.Queuert(state=backend.state, notify=notify, chains=[ping_chain]), notify.recorder


async def test_with_notify_sends_after_the_block_and_drops_on_error(backend: SyncBackend) -> None:
    app, recorder = _app(backend)
    client = SyncClient(app)
    during: list[list[tuple[str, str, int]]] = []

    class Undo(Exception):
        pass

    def run() -> None:
        with client.with_notify(), backend.transaction() as conn:
            client.enqueue_job_chains(conn, ping_chain, [Ping(1), Ping(2)])
            during.append(list(recorder.sent))
        with pytest.raises(Undo), client.with_notify(), backend.transaction() as conn:
            client.enqueue_job_chain(conn, ping_chain, Ping(3))
            raise Undo

    await asyncio.to_thread(run)
    assert during == [[]]
    assert recorder.sent == [("scheduled", ping_chain.name, 2)]


async def test_an_on_commit_hook_gets_each_write_s_signals(backend: SyncBackend) -> None:
    app, recorder = _app(backend)
    hooked: list[Callable[[], None]] = []
    client = SyncClient(app, on_commit=hooked.append)

    def run() -> str:
        with backend.transaction() as conn:
            handle = client.enqueue_job_chain(conn, ping_chain, Ping(1))
            client.cancel_chain(conn, handle.id)
        return handle.id

    chain_id = await asyncio.to_thread(run)
    assert len(hooked) == 2 and recorder.sent == []
    for send in hooked:
        send()
    assert recorder.sent == [("scheduled", ping_chain.name, 1), ("completed", chain_id, 1)]
    client.close()
    assert recorder.closed == 1


async def test_without_either_signals_leave_at_once(backend: SyncBackend) -> None:
    app, recorder = _app(backend)
    client = SyncClient(app)

    def run() -> list[tuple[str, str, int]]:
        with backend.transaction() as conn:
            client.enqueue_job_chain(conn, ping_chain, Ping(1))
            return list(recorder.sent)

    assert await asyncio.to_thread(run) == [("scheduled", ping_chain.name, 1)]


async def test_a_publisher_that_fails_does_not_fail_the_call(backend: SyncBackend) -> None:
    app, recorder = _app(backend)

    def broken(**_: Any) -> None:
        raise ConnectionError("notifier down")

    recorder.publish_job_scheduled = broken  # type: ignore[method-assign]
    client = SyncClient(app)

    def run() -> str:
        with backend.transaction() as conn:
            return client.enqueue_job_chain(conn, ping_chain, Ping(1)).id

    assert await app.get_chain(await asyncio.to_thread(run)) is not None
    assert app.metrics.get("notify.job_scheduled.publish_errors") == 1


async def test_postgres_signals_leave_with_the_commit(backend: SyncBackend) -> None:
    """With its notifier on the same database, the PostgreSQL adapter's writes carry
    NOTIFY: a listener hears the committed start, never the rolled-back one."""
    if backend.url is None:
        pytest.skip("PostgreSQL only")
    from queuert_postgres import PostgresNotifyAdapter, PostgresStateAdapter

    state = backend.state
    assert isinstance(state, PostgresStateAdapter)
    prefix = unique_name("sync")
    notify = PostgresNotifyAdapter(backend.url, channel_prefix=prefix, publish_pool=state.pool)
    app = queuert.Queuert(state=state, notify=notify, chains=[ping_chain])
    assert app._signals_in_writes
    listener = PostgresNotifyAdapter(backend.url, channel_prefix=prefix)
    heard: list[int] = []

    async def on_scheduled(signal: queuert.ScheduledSignal) -> None:
        heard.append(signal.count)

    subscription = await listener.subscribe_job_scheduled(
        queues=[ping_chain.name], listener=on_scheduled
    )
    client = SyncClient(app)

    class Undo(Exception):
        pass

    def run() -> None:
        with pytest.raises(Undo), backend.transaction() as conn:
            client.enqueue_job_chain(conn, ping_chain, Ping(1))
            raise Undo
        with backend.transaction() as conn:
            client.enqueue_job_chains(conn, ping_chain, [Ping(2), Ping(3)])

    try:
        await asyncio.to_thread(run)
        await eventually(lambda: bool(heard), timeout=10, message="no NOTIFY heard")
        assert heard == [2]
    finally:
        await subscription.unsubscribe()
        await listener.close()
        await notify.close()


async def test_postgres_lease_lost_and_unbound_signals_leave_through_psycopg(
    backend: SyncBackend,
) -> None:
    """What the writes do not carry (the lease-lost signal of a cancel, or every
    signal of a notifier on another connection string) leaves through the PostgreSQL
    notifier's synchronous publisher, after the commit."""
    if backend.url is None:
        pytest.skip("PostgreSQL only")
    from queuert_postgres import PostgresNotifyAdapter, PostgresStateAdapter

    state = backend.state
    assert isinstance(state, PostgresStateAdapter)
    prefix = unique_name("sync")
    bound = PostgresNotifyAdapter(backend.url, channel_prefix=prefix, publish_pool=state.pool)
    # Another connection string to the same server: not bound, so core publishes.
    unbound = PostgresNotifyAdapter(backend.url + "?application_name=other", channel_prefix=prefix)
    listener = PostgresNotifyAdapter(backend.url, channel_prefix=prefix)
    lost: list[str] = []
    scheduled: list[int] = []

    async def on_lost(job_id: str) -> None:
        lost.append(job_id)

    async def on_scheduled(signal: queuert.ScheduledSignal) -> None:
        scheduled.append(signal.count)

    subscriptions = [
        await listener.subscribe_lease_lost(job_id=None, listener=on_lost),
        await listener.subscribe_job_scheduled(queues=[lease_chain.name], listener=on_scheduled),
    ]
    bound_client = SyncClient(queuert.Queuert(state=state, notify=bound, chains=[lease_chain]))
    unbound_app = queuert.Queuert(state=state, notify=unbound, chains=[lease_chain])
    assert not unbound_app._signals_in_writes
    unbound_client = SyncClient(unbound_app)
    handle = await bound_client.app.enqueue_job_chain(None, lease_chain, Ping(1))
    (running,) = await state.acquire_jobs(
        tx=None, queues=[lease_chain.name], limit=1, owner="a-worker", lease_ms=60_000
    )
    assert running.id == handle.id

    def run() -> None:
        with bound_client.with_notify(), backend.transaction() as conn:
            bound_client.cancel_chain(conn, handle.id)
        with unbound_client.with_notify(), backend.transaction() as conn:
            unbound_client.enqueue_job_chains(conn, lease_chain, [Ping(2), Ping(3), Ping(4)])

    try:
        await asyncio.to_thread(run)
        await eventually(lambda: bool(lost) and 3 in scheduled, timeout=10)
        assert lost == [handle.id]
    finally:
        for subscription in subscriptions:
            await subscription.unsubscribe()
        for adapter in (listener, bound, unbound):
            await adapter.close()


async def test_a_deduplicated_start_announces_nothing(backend: SyncBackend) -> None:
    app, recorder = _app(backend)
    client = SyncClient(app)
    key = f"once-{backend.name}"

    def run() -> None:
        with backend.transaction() as conn:
            client.enqueue_job_chain(conn, ping_chain, Ping(1), dedup_key=key)
        with backend.transaction() as conn:
            again = client.enqueue_job_chain(conn, ping_chain, Ping(2), dedup_key=key)
            assert again.deduplicated

    await asyncio.to_thread(run)
    assert recorder.sent == [("scheduled", ping_chain.name, 1)]


wait_chain = queuert.chain("sync-wait", input=Ping, output=Ping)


async def test_completing_a_blocker_wakes_the_queue_of_the_job_it_unblocks(
    backend: SyncBackend,
) -> None:
    notify = RecordingNotify()
    app = queuert.Queuert(state=backend.state, notify=notify, chains=[ping_chain, wait_chain])
    client = SyncClient(app)

    def run() -> str:
        with backend.transaction() as conn:
            blocker = client.enqueue_job_chain(conn, ping_chain, Ping(1))
            client.enqueue_job_chain(conn, wait_chain, Ping(2), blockers=[blocker])
        notify.recorder.sent.clear()
        with backend.transaction() as conn:
            client.complete_job(conn, blocker.id, output=Ping(1))
        return blocker.id

    chain_id = await asyncio.to_thread(run)
    assert ("completed", chain_id, 1) in notify.recorder.sent
    assert ("scheduled", wait_chain.name, 1) in notify.recorder.sent
