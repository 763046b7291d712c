"""A TCP proxy between the library and a server, that the test can make misbehave.

``FaultProxy`` listens on a free port of 127.0.0.1 and forwards every
connection to its target. At any moment the test can:

- add ``latency`` (seconds, each way, per chunk of data);
- :meth:`drop_all`: abort every open connection (both sides see a reset);
- :meth:`refuse`: drop all, and abort new connections as soon as they arrive
  (the server is unreachable);
- :meth:`blackhole`: a half-open network: open connections and new ones are
  kept, their data read and thrown away, nothing forwarded and nothing
  answered, and no connection is ever closed by the proxy;
- :meth:`restore`: forward again. Connections that lost data to the blackhole
  are aborted first, as the peer would after a real partition.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

Mode = Literal["forward", "refuse", "blackhole"]
_CHUNK = 65536


class _Pair:
    """One client connection and, unless it was blackholed from the start, its
    upstream connection."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.lost_data = False
        self.tasks: list[asyncio.Task[None]] = []

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.transport.abort()
        for task in self.tasks:
            task.cancel()


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.latency = 0.0
        self.mode: Mode = "forward"
        self.connections_accepted = 0
        self._pairs: set[_Pair] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @classmethod
    def for_url(cls, url: str) -> FaultProxy:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None, url
        return cls(parts.hostname, parts.port)

    def url(self, url: str) -> str:
        """``url`` (whose host and port are the target's) pointed at the proxy."""
        parts = urlsplit(url)
        userinfo, _, _ = parts.netloc.rpartition("@")
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.drop_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def open_connections(self) -> int:
        return len(self._pairs)

    def drop_all(self) -> None:
        for pair in list(self._pairs):
            pair.abort()
        self._pairs.clear()

    def refuse(self) -> None:
        self.mode = "refuse"
        self.drop_all()

    def blackhole(self) -> None:
        self.mode = "blackhole"

    def restore(self) -> None:
        for pair in list(self._pairs):
            if pair.lost_data or pair.upstream is None:
                pair.abort()
                self._pairs.discard(pair)
        self.mode = "forward"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_accepted += 1
        if self.mode == "refuse":
            writer.transport.abort()
            return
        pair = _Pair(writer)
        self._pairs.add(pair)
        try:
            if self.mode == "forward":
                try:
                    up_reader, pair.upstream = await asyncio.open_connection(
                        self.target_host, self.target_port
                    )
                except OSError:
                    return
                pair.tasks = [
                    asyncio.create_task(self._pump(pair, reader, pair.upstream)),
                    asyncio.create_task(self._pump(pair, up_reader, writer)),
                ]
                await asyncio.gather(*pair.tasks, return_exceptions=True)
            else:
                # Blackholed from the start: read everything, answer nothing, forever.
                pair.lost_data = True
                pump = asyncio.create_task(self._pump(pair, reader, None))
                pair.tasks = [pump]
                await asyncio.gather(pump, return_exceptions=True)
        finally:
            if pair in self._pairs and self.mode != "blackhole":
                pair.abort()
                self._pairs.discard(pair)

    async def _pump(
        self, pair: _Pair, source: asyncio.StreamReader, sink: asyncio.StreamWriter | None
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                data = await source.read(_CHUNK)
                if not data:
                    break
                if sink is None or self.mode == "blackhole":
                    pair.lost_data = True
                    continue
                if self.latency:
                    await asyncio.sleep(self.latency)
                sink.write(data)
                await sink.drain()
        # One side closed: close the other (unless the network is "down", where a
        # close would never arrive).
        if self.mode != "blackhole":
            pair.abort()


@asynccontextmanager
async def fault_proxy(url: str) -> AsyncIterator[FaultProxy]:
    """A started proxy to the server of ``url``, closed on exit."""
    proxy = FaultProxy.for_url(url)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
