"""Counting committed job ends without polling the database."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from queuert import Metrics, Queuert
from queuert.instrumented import InstrumentedNotify, InstrumentedState


@dataclass
class Probe:
    """Counts jobs whose end was committed and remembers when the first handler
    started and when the last end committed (seconds of ``clock``; use
    ``time.monotonic`` to compare across processes).

    ``target`` ends set :attr:`done`.
    """

    target: int
    clock: Callable[[], float] = time.perf_counter
    count: int = 0
    first_start: float | None = None
    last_end: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def started(self) -> None:
        if self.first_start is None:
            self.first_start = self.clock()

    def ended(self, n: int = 1) -> None:
        self.count += n
        self.last_end = self.clock()
        if self.count >= self.target:
            self.done.set()

    @property
    def elapsed(self) -> float:
        """Seconds from the first handler start to the last committed end."""
        if self.first_start is None or self.last_end is None:
            return float("nan")
        return self.last_end - self.first_start

    async def wait(self, timeout: float) -> None:
        """Wait for ``target`` ends; raises TimeoutError naming how far it got."""
        try:
            async with asyncio.timeout(timeout):
                await self.done.wait()
        except TimeoutError:
            raise TimeoutError(
                f"only {self.count} of {self.target} job ends committed within {timeout:.0f} s"
            ) from None


class ProbeMetrics(Metrics):
    """queuert's counters, also telling a probe of every ``jobs.finalized``: the
    worker counts that after the job's end (completion or continuation) committed."""

    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    def incr(self, name: str, amount: int = 1) -> None:
        super().incr(name, amount)
        if name == "jobs.finalized":
            self.probe.ended(amount)


def attach_probe(app: Queuert[object], probe: Probe) -> ProbeMetrics:
    """Route the application's counters through a :class:`ProbeMetrics`."""
    metrics = ProbeMetrics(probe)
    app.metrics = metrics
    if isinstance(app.state, InstrumentedState):
        app.state.metrics = metrics
    if isinstance(app.notify, InstrumentedNotify):
        app.notify.metrics = metrics
    return metrics


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]
