"""In-process counters of what queuert did, readable by the application."""

from __future__ import annotations

from collections import Counter


class Metrics:
    """Monotonic counters keyed by name (``state.acquire_jobs.calls``,
    ``jobs.completed``, ...). Cheap enough for the hot path."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def incr(self, name: str, amount: int = 1) -> None:
        self._counts[name] += amount

    def get(self, name: str) -> int:
        return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter."""
        return dict(self._counts)
