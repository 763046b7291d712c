"""Publishing through a connection that silently drops packets (half-open) returns
after the publish timeout instead of waiting forever."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest_asyncio

from queuert_postgres import PostgresNotifyAdapter


class BlackholeProxy:
    """A TCP proxy to ``host:port`` that forwards until :meth:`blackhole` is called,
    then keeps every connection open and forwards nothing more."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.dropping = False
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    def blackhole(self) -> None:
        self.dropping = True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        if self.dropping:
            return  # accepted, never answered
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        self.writers.append(up_writer)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while data := await src.read(65536):
            if not self.dropping:
                dst.write(data)
                await dst.drain()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for writer in self.writers:
            writer.close()


@pytest_asyncio.fixture
async def proxied_url(postgres_url: str) -> AsyncIterator[tuple[str, BlackholeProxy]]:
    parts = urlsplit(postgres_url)
    proxy = BlackholeProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    port = await proxy.start()
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    url = urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))
    yield url, proxy
    await proxy.close()


async def test_a_publish_over_a_half_open_connection_gives_up_after_its_timeout(
    proxied_url: tuple[str, BlackholeProxy],
) -> None:
    url, proxy = proxied_url
    notify = PostgresNotifyAdapter(url, publish_timeout=0.3, connect_timeout=0.3)
    try:
        async with asyncio.timeout(10):
            await notify.publish_job_scheduled(queue="q", count=1)  # connects, sends
            proxy.blackhole()
            await notify.publish_job_scheduled(queue="q", count=1)
            await notify.publish_chain_completed(chain_id="c")
    finally:
        async with asyncio.timeout(10):
            await notify.close()
