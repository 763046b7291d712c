"""Reads outside a transaction, run on a thread of their own.

A read can take long (a listing over a large table), and the event loop must not
wait for it: the reader connection's statements run on one dedicated thread, in
the order they were sent.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from queuert.errors import TransientStateError
from queuert_sqlite.connections import is_busy

T = TypeVar("T")

_FIRST_PAUSE_S = 0.0005
_MAX_PAUSE_S = 0.02


class ReaderThread:
    """One thread running the reader connection's statements."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="queuert-sqlite-read")

    async def run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    async def run_retrying_busy(self, work: Callable[[], T], *, deadline: float, path: str) -> T:
        """``work`` on the thread, tried again (after a pause on the loop) while it
        fails with a busy database, until the loop time ``deadline``; then raise
        :class:`~queuert.errors.TransientStateError`."""
        loop = asyncio.get_running_loop()
        pause = _FIRST_PAUSE_S
        while True:
            try:
                return await self.run(work)
            except sqlite3.OperationalError as error:
                if not is_busy(error):
                    raise
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TransientStateError(
                        f"SQLite database {path!r} is busy: another connection kept it "
                        f"locked past the busy timeout ({error})"
                    ) from error
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, _MAX_PAUSE_S)

    async def close(self, conn: sqlite3.Connection | None) -> None:
        """Close ``conn`` on the thread, after the statements sent before, and stop
        the thread."""
        try:
            if conn is not None:
                await self.run(conn.close)
        finally:
            self._executor.shutdown(wait=False)
