"""The fault proxy does what the scenarios rely on, against a local echo server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.faults.proxy import FaultProxy, fault_proxy

pytestmark = pytest.mark.faults


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with fault_proxy(f"tcp://127.0.0.1:{port}") as p:
            yield p
    finally:
        server.close()
        await server.wait_closed()


async def _connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def _round_trip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"ping")
    await writer.drain()
    async with asyncio.timeout(5):
        return await reader.readexactly(4)


async def test_forwards_and_adds_latency_each_way(proxy: FaultProxy) -> None:
    reader, writer = await _connect(proxy)
    assert await _round_trip(reader, writer) == b"ping"
    proxy.latency = 0.1
    began = time.monotonic()
    assert await _round_trip(reader, writer) == b"ping"
    assert time.monotonic() - began >= 0.2, "the delay is added on the way there and back"
    writer.close()


async def test_drop_all_resets_open_connections(proxy: FaultProxy) -> None:
    reader, writer = await _connect(proxy)
    assert await _round_trip(reader, writer) == b"ping"
    proxy.drop_all()
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await _round_trip(reader, writer)
        await _round_trip(reader, writer)
    reader, writer = await _connect(proxy)
    assert await _round_trip(reader, writer) == b"ping", "new connections are forwarded"
    writer.close()


async def test_refuse_cuts_new_connections_until_restored(proxy: FaultProxy) -> None:
    proxy.refuse()
    reader, writer = await _connect(proxy)
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await _round_trip(reader, writer)
        await _round_trip(reader, writer)
    proxy.restore()
    reader, writer = await _connect(proxy)
    assert await _round_trip(reader, writer) == b"ping"
    writer.close()


async def test_blackhole_keeps_connections_open_and_answers_nothing(proxy: FaultProxy) -> None:
    old_reader, old_writer = await _connect(proxy)
    assert await _round_trip(old_reader, old_writer) == b"ping"
    proxy.blackhole()
    new_reader, new_writer = await _connect(proxy)
    for reader, writer in ((old_reader, old_writer), (new_reader, new_writer)):
        writer.write(b"ping")
        await writer.drain()
        read = asyncio.ensure_future(reader.read(4))
        done, _ = await asyncio.wait({read}, timeout=0.3)
        assert not done, "a blackholed connection neither answers nor closes"
        read.cancel()
    assert proxy.open_connections == 2
    proxy.restore()
    assert proxy.open_connections == 0, "connections that lost data are cut on restore"
    reader, writer = await _connect(proxy)
    assert await _round_trip(reader, writer) == b"ping"
    writer.close()
