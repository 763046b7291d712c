"""The numbers behind the ``queuert.jobs`` gauge: jobs per queue and open status,
read from the store at most every ``interval`` seconds.

OpenTelemetry calls a gauge's callback synchronously, possibly from its export
thread, while the store is read on the application's event loop. So the callback
returns the last numbers read and, when they are older than ``interval``, asks the
loop for a fresh read; the next collection reports it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation

from queuert.ports.state import StateAdapter
from queuert.records import JobStatus

log = logging.getLogger("queuert.otel")

COUNTED = (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.BLOCKED)
"""The statuses the gauge reports."""


class JobCounts:
    """Cached counts of ``state``'s jobs in :data:`COUNTED` statuses."""

    def __init__(self, state: StateAdapter[Any], interval: float) -> None:
        self._state = state
        self._interval = interval
        self._values: dict[tuple[str, JobStatus], int] = {}
        self._read_at: float | None = None
        self._reading = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Read on ``loop`` (the loop the application runs on)."""
        self._loop = loop

    async def refresh(self) -> None:
        """Read the counts now. A failed read is logged and keeps the last numbers."""
        self._reading = True
        self._read_at = time.monotonic()
        try:
            read = await self._state.count_jobs(tx=None)
        except Exception as exc:
            log.warning("reading job counts for the queuert.jobs gauge failed: %s", exc)
            return
        finally:
            self._reading = False
        counts = {
            (count.queue, count.status): count.count
            for count in read.counts
            if count.status in COUNTED
        }
        # A pair seen before and absent now has dropped to zero: report the zero.
        self._values = {key: 0 for key in self._values} | counts

    def _refresh_soon(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or self._reading:
            return
        if self._read_at is not None and time.monotonic() - self._read_at < self._interval:
            return
        self._reading = True

        def start() -> None:
            self._task = loop.create_task(self.refresh())

        loop.call_soon_threadsafe(start)

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        """The gauge's callback."""
        self._refresh_soon()
        return [
            Observation(
                count, {"messaging.destination.name": queue, "queuert.job.status": status.value}
            )
            for (queue, status), count in self._values.items()
        ]
