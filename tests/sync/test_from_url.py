"""A synchronous client built from the workers' URLs, with no event loop and no
connection of its own."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

import queuert
from queuert.sync import SyncClient
from tests.sync.conftest import SyncBackend
from tests.waiting import eventually


@dataclass
class Note:
    text: str


note_chain = queuert.chain("sync-note", input=Note, output=Note)


def _url(backend: SyncBackend) -> str:
    if backend.path is not None:
        return f"sqlite:///{backend.path}"  # the path is absolute: sqlite:////tmp/...
    return f"{backend.url}?schema={backend.schema}"


async def test_a_client_from_the_state_url_writes_where_the_workers_read(
    backend: SyncBackend,
) -> None:
    url = _url(backend)

    def start() -> str:
        client = SyncClient.from_url(chains=[note_chain], state=url, notify="none")
        with backend.transaction() as conn:
            return client.enqueue_job_chain(conn, note_chain, Note("hi")).id

    chain_id = await asyncio.to_thread(start)
    app = queuert.Queuert(state=backend.state, chains=[note_chain])
    chain = await app.get_chain(chain_id)
    assert chain is not None and chain.input == '{"text":"hi"}'


async def test_the_postgres_client_carries_notify_and_has_no_pool(backend: SyncBackend) -> None:
    if backend.url is None:
        pytest.skip("PostgreSQL only")
    from queuert_postgres import PostgresNotifyAdapter

    assert backend.schema is not None
    # One URL for both, as a deployment gives it: the notifier's channels are named
    # after the schema.
    url = f"{backend.url}?schema={backend.schema}"
    client = SyncClient.from_url(chains=[note_chain], state=url, notify=url)
    assert client.app._signals_in_writes
    listener = PostgresNotifyAdapter(backend.url, channel_prefix=backend.schema)
    heard: list[int] = []

    async def on_scheduled(signal: queuert.ScheduledSignal) -> None:
        heard.append(signal.count)

    subscription = await listener.subscribe_job_scheduled(
        queues=[note_chain.name], listener=on_scheduled
    )

    def start() -> None:
        with backend.transaction() as conn:
            client.enqueue_job_chain(conn, note_chain, Note("wake"))

    try:
        await asyncio.to_thread(start)
        await eventually(lambda: heard == [1], timeout=10, message="no NOTIFY heard")
    finally:
        await subscription.unsubscribe()
        await listener.close()
    # Built for synchronous calls only: it has no pool for calls of its own.
    with pytest.raises(queuert.AdapterError, match="no connection pool"):
        await client.app.get_chain("any")


def test_urls_it_cannot_serve_are_refused() -> None:
    with pytest.raises(queuert.ConfigurationError):
        SyncClient.from_url(chains=[note_chain], state="nosuchscheme://x")
    client = SyncClient.from_url(chains=[note_chain], state="memory://", notify="none")
    with pytest.raises(queuert.UnsupportedOperationError, match="sync_transaction"):
        client.enqueue_job_chain(object(), note_chain, Note("x"))


def test_a_state_factory_that_connects_is_refused(monkeypatch: Any) -> None:
    from queuert import urls

    async def connecting(url: str) -> Any:
        await asyncio.sleep(0)  # stands for opening a connection

    monkeypatch.setattr(urls, "_build", lambda group, url: connecting(url))
    with pytest.raises(queuert.ConfigurationError, match="connects when it is built"):
        SyncClient.from_url(chains=[note_chain], state="sqlite:///x.db")
