"""Backing off from a recurring operation that keeps failing, with one log line
when the failures start and one when they end."""

from __future__ import annotations

import logging
import time
from typing import Any


class Outage:
    """Consecutive failures of one recurring worker operation (acquiring, reaping).

    :meth:`failed` logs the first failure of a run at WARNING (later ones at
    DEBUG) and returns how long to wait before the next try: ``base`` seconds,
    doubling per failure up to ``cap``. :meth:`succeeded` logs, at WARNING, that
    the operation works again and how many tries failed, if any did.
    """

    __slots__ = ("_base", "_cap", "_log", "_started", "_what", "failures")

    def __init__(
        self,
        log: logging.Logger | logging.LoggerAdapter[Any],
        what: str,
        *,
        base: float,
        cap: float,
    ) -> None:
        self._log = log
        self._what = what
        self._base = base
        self._cap = max(cap, base)
        self._started = 0.0
        self.failures = 0

    def failed(self, exc: BaseException) -> float:
        self.failures += 1
        delay = min(self._cap, self._base * 2.0 ** min(self.failures - 1, 32))
        if self.failures == 1:
            self._started = time.monotonic()
            self._log.warning(
                "%s failed (%s: %s); retrying with backoff up to %.1f s, logging again "
                "when it works",
                self._what,
                type(exc).__name__,
                exc,
                self._cap,
            )
        else:
            self._log.debug("%s failed again (%d in a row): %s", self._what, self.failures, exc)
        return delay

    def succeeded(self) -> None:
        if not self.failures:
            return
        self._log.warning(
            "%s works again after %d failed tries over %.1f s",
            self._what,
            self.failures,
            time.monotonic() - self._started,
        )
        self.failures = 0
