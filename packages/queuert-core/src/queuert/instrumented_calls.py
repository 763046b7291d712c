"""What every instrumented state operation goes through: counting, logging and
retrying a call, and telling the observer about leases and created jobs."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TypeVar

from queuert.errors import LeaseLostError, TransientStateError
from queuert.handed_out import HandedOut
from queuert.metrics import Metrics
from queuert.observer import Observer
from queuert.ports.state import StateAdapter, Tx
from queuert.records import Lease, NewJob

R = TypeVar("R")

log = logging.getLogger("queuert.state")


class InstrumentedCalls(StateAdapter[Tx]):
    """The part of :class:`~queuert.instrumented.InstrumentedState` its groups of
    forwarded operations share: the wrapped adapter (``inner``), the metrics, the
    observer, and the call wrapper that counts, logs and retries."""

    observer: Observer | None = None

    def __init__(
        self,
        inner: StateAdapter[Tx],
        metrics: Metrics,
        *,
        attempts: int = 4,
        base_delay: float = 0.05,
    ) -> None:
        self.inner = inner
        self.capabilities = inner.capabilities
        self.metrics = metrics
        self._attempts = attempts
        self._base_delay = base_delay
        self._handed_out = HandedOut()

    async def _call(
        self,
        op: str,
        tx: object,
        fn: Callable[[], Awaitable[R]],
        done: Callable[[], Awaitable[R | None]] | None = None,
    ) -> R:
        """``fn()``, retried after transient errors when ``tx`` is ``None``. Before a
        retry, ``done()`` (when given) may find that the failed try took effect
        after all (its commit's acknowledgement was lost) and return its result."""
        self.metrics.incr(f"state.{op}.calls")
        attempt = 1
        while True:
            try:
                if attempt > 1 and done is not None:
                    result = await done()
                    if result is not None:
                        self.metrics.incr(f"state.{op}.found_done")
                        return result
                return await fn()
            except TransientStateError as exc:
                self.metrics.incr(f"state.{op}.transient_errors")
                if tx is not None or attempt >= self._attempts:
                    log.warning("state operation %s failed: %s", op, exc)
                    raise
                delay = self._base_delay * 2 ** (attempt - 1) * (0.5 + random.random())
                log.info(
                    "state operation %s failed transiently (%s); retry in %.3fs", op, exc, delay
                )
                await asyncio.sleep(delay)
                attempt += 1

    async def _leased(self, lease: Lease, call: Awaitable[R]) -> R:
        """``call``'s result; a lost lease is told to the observer on its way out."""
        try:
            return await call
        except LeaseLostError:
            if self.observer is not None:
                self.observer.lease_lost(lease)
            raise

    def _creating(
        self, jobs: Sequence[NewJob], *, by: Lease | None
    ) -> AbstractContextManager[Sequence[NewJob]]:
        """The observer's :meth:`~queuert.observer.Observer.creating`, or ``jobs`` as
        they are without an observer."""
        if self.observer is None:
            return nullcontext(jobs)
        return self.observer.creating(jobs, by=by)

    def _own_finalize(self, tx: Tx | None, lease: Lease) -> AbstractContextManager[None]:
        """A finalize phase for a completion written in its own transaction (inside a
        caller's transaction the leased transaction is the phase)."""
        if tx is None and self.observer is not None:
            return self.observer.phase(lease, "finalize")
        return nullcontext()
