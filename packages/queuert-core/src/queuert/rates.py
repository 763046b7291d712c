"""Global rate limits of a queue: at most N of its jobs *start* per window, across
every worker, or at most N per key.

A rate is declared on the queue (``queuert.chain(..., rate_limit="100/min")``,
``chain.queue(..., rate_limit="50/s")``) as ``"<count>/<unit>"`` with the unit
``s``, ``min`` or ``h``. With ``concurrency_key=lambda input: ...`` the rate
(like a concurrency limit declared beside it) counts per key: the key is
computed from the job's input when the job is created and stored with it.

The window slides on the database's clock: an acquisition at ``now`` starts at
most the count minus the queue's (key's) starts within ``(now - window, now]``,
so no span of one window's length, wherever it falls, holds more starts than
the count. Starts are counted in the database, in the transaction that leases
the jobs (:meth:`~queuert.ports.state.StateAdapter.acquire_rate_limited_jobs`),
so no two workers together exceed the rate. A job held back by the rate stays
``pending``, is not an attempt, and does not hold back jobs of other queues or
other keys. A job counts from its acquisition until a window's length has
passed, whatever happens to it meanwhile (a retry is a new start).

The database counts over the window plus a guard (:attr:`RateLimit.held_window_ms`):
a handler starts a little after its job's acquisition, some sooner than others,
and without the guard the last handlers of one window and the first of the next
could start within one window's length by the handlers' own clocks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from queuert.errors import ConfigurationError, ValidationError
from queuert.ports.state import StateAdapter
from queuert.records import JobRecord
from queuert.validation import INT32_MAX, show

if TYPE_CHECKING:
    from queuert.definitions import QueueDef

_UNITS_MS = {
    "s": 1_000,
    "sec": 1_000,
    "second": 1_000,
    "m": 60_000,
    "min": 60_000,
    "minute": 60_000,
    "h": 3_600_000,
    "hour": 3_600_000,
}
_RATE = re.compile(r"\s*([0-9]{1,10})\s*/\s*([a-z]{1,6})\s*")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``count`` job starts per window of ``window_ms`` milliseconds, counted
    per concurrency key when ``per_key`` is set (jobs stored without a key then
    count as one group)."""

    count: int
    window_ms: int
    per_key: bool = False

    @property
    def held_window_ms(self) -> int:
        """The span the database counts starts over: the declared window plus a
        tenth of it, at most 250 ms.

        Why: the database records a start when it leases the job; the handler runs
        a few milliseconds later, after the commit and the dispatch. Counted over
        the bare window, a window's last handlers (dispatched late) and the next
        window's first (dispatched promptly) could start within one window's
        length by the handlers' own clocks. The guard absorbs that spread, at the
        cost of at most a tenth of the throughput for one-second windows."""
        return self.window_ms + min(self.window_ms // 10, 250)

    def __str__(self) -> str:
        unit = {1_000: "s", 60_000: "min", 3_600_000: "h"}[self.window_ms]
        return f"{self.count}/{unit}"


def rate_limit(value: object, *, per_key: bool) -> RateLimit | None:
    """The rate declared by a queue's ``rate_limit`` argument (``"100/min"``,
    ``"50/s"``, ``"1000/h"``), or ``None``. Raises
    :class:`~queuert.errors.ValidationError` naming the value when it is not such
    text or its count is not within ``1..2147483647``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(
            f"rate_limit must be text such as '100/min' (a count per s, min or h), "
            f"got {show(value)}"
        )
    match = _RATE.fullmatch(value)
    window_ms = _UNITS_MS.get(match.group(2)) if match else None
    if match is None or window_ms is None:
        raise ValidationError(
            f"rate_limit must be '<count>/<unit>' with the unit s, min or h "
            f"(such as '100/min'), got {show(value)}"
        )
    count = int(match.group(1))
    if not 1 <= count <= INT32_MAX:
        raise ValidationError(
            f"rate_limit's count must be within 1..{INT32_MAX}, got {show(value)}"
        )
    return RateLimit(count=count, window_ms=window_ms, per_key=per_key)


def split_by_rate(
    queues: Mapping[str, QueueDef[Any, Any]], names: Sequence[str]
) -> tuple[list[str], list[tuple[str, RateLimit]]]:
    """``names`` split into queues without a rate limit and rate-limited queues with
    their rate."""
    others: list[str] = []
    rated: list[tuple[str, RateLimit]] = []
    for name in names:
        rate = queues[name].rate
        if rate is None:
            others.append(name)
        else:
            rated.append((name, rate))
    return others, rated


def check_supported(state: StateAdapter[Any], rated: Sequence[tuple[str, RateLimit]]) -> None:
    """Raise :class:`~queuert.errors.ConfigurationError` when a queue declares a rate
    limit that ``state`` cannot enforce."""
    if rated and not state.capabilities.rate_limits:
        names = ", ".join(repr(name) for name, _ in rated[:5])
        raise ConfigurationError(
            f"queue(s) {names} declare a rate limit, which the state adapter "
            "does not support (capabilities.rate_limits)"
        )


@dataclass(slots=True)
class RatedResult:
    """Jobs leased from rate-limited queues, and the shortest wait until a queue the
    rate held back gains room (seconds; ``None`` when none was)."""

    jobs: list[JobRecord]
    wait_s: float | None


async def acquire_jobs(
    state: StateAdapter[Any],
    queues: Mapping[str, QueueDef[Any, Any]],
    *,
    rated: Sequence[tuple[str, RateLimit]],
    limit: int,
    owner: str,
    lease_ms: int,
) -> RatedResult:
    """Lease up to ``limit`` jobs of the ``rated`` queues, each under its rate (and the
    concurrency limit it declares beside it), one queue after the other while free
    slots remain."""
    result = RatedResult(jobs=[], wait_s=None)
    for name, rate in rated:
        free = limit - len(result.jobs)
        if free <= 0:
            break
        concurrency = queues[name].limit
        got = await state.acquire_rate_limited_jobs(
            tx=None,
            queue=name,
            limit=free,
            owner=owner,
            lease_ms=lease_ms,
            rate=rate.count,
            window_ms=rate.held_window_ms,
            per_key=rate.per_key,
            concurrency_limit=None if concurrency is None else concurrency.limit,
        )
        result.jobs += got.jobs
        if got.next_window_ms is not None:
            # Never less than a millisecond: room that just opened is retried at once.
            wait = max(got.next_window_ms, 1) / 1000
            result.wait_s = wait if result.wait_s is None else min(result.wait_s, wait)
    return result
