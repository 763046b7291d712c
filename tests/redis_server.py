"""A private redis-server process, for tests that stop Redis and start it again.

Outside CI a missing ``redis-server`` binary skips the test with a one-line
reason; with ``CI=true`` it fails it.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

from tests.servers import missing_tool
from tests.waiting import eventually


class RedisServer:
    """A throwaway redis-server that can be stopped and started again on one port."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start the server and wait until it answers a ping."""
        self.process = await asyncio.create_subprocess_exec(
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

        async def answers() -> bool:
            client = Redis.from_url(self.url)
            try:
                return bool(await client.ping())
            except Exception:
                return False
            finally:
                await client.aclose()

        await eventually(answers, timeout=10, interval=0.02, message="redis-server did not start")

    async def stop(self) -> None:
        """Stop the server (nothing happens if it is not running)."""
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            process.terminate()
            async with asyncio.timeout(10):
                await process.wait()


@asynccontextmanager
async def private_redis_server() -> AsyncIterator[RedisServer]:
    """A server on a free port, not started yet; stopped on exit."""
    binary = shutil.which("redis-server")
    if binary is None:
        missing_tool("redis-server is not on PATH")
    server = RedisServer(binary)
    try:
        yield server
    finally:
        await server.stop()
