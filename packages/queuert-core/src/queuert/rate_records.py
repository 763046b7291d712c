"""The record an acquisition under a rate limit returns (see :mod:`queuert.rates`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from queuert.records import JobRecord


@dataclass(frozen=True, slots=True)
class RateAcquisition:
    """What one acquisition under a rate returned: the leased ``jobs`` (in acquisition
    order) and, when an eligible job of the queue was left ``pending`` because its
    window's starts are used up, ``next_window_ms``: how long, by the database's
    clock, until the oldest start its key counts leaves the window, so that the key
    has room again (``None`` when the rate held nothing back)."""

    jobs: list[JobRecord] = field(default_factory=list)
    next_window_ms: int | None = None
