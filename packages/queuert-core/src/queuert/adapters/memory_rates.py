"""The in-memory adapter's acquisition under a rate limit (see :mod:`queuert.rates`).

Runs inside a :class:`~queuert.adapters.memory_state.MemoryTransaction` the adapter
holds (``MemoryStateAdapter._run``), so acquisitions take turns; the start log is
restored when the transaction rolls back. A scan of the queue's jobs: the
reference for what the SQL adapters compute.
"""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from queuert.rate_records import RateAcquisition
from queuert.records import JobRecord, JobStatus

if TYPE_CHECKING:
    from queuert.adapters.memory_state import MemoryStateAdapter, MemoryTransaction

_ONE_MS = timedelta(milliseconds=1)


class MemoryRateWindows:
    """Per (queue, key): the start times of its jobs still within the longest window
    an acquisition asked about (oldest first), pruned as acquisitions pass."""

    def __init__(self) -> None:
        self.starts: dict[tuple[str, str], deque[datetime]] = {}

    def counted(self, queue: str, key: str, cutoff: datetime) -> list[datetime]:
        """The starts of the key within the window: those after ``cutoff``."""
        return [t for t in self.starts.get((queue, key), ()) if t > cutoff]

    def record(
        self, tx: MemoryTransaction, queue: str, key: str, now: datetime, n: int, cutoff: datetime
    ) -> None:
        """Log ``n`` starts at ``now`` and drop the key's starts at or before
        ``cutoff``; both undone when ``tx`` rolls back."""
        slot = (queue, key)
        log = self.starts.setdefault(slot, deque())
        pruned: list[datetime] = []
        while log and log[0] <= cutoff:
            pruned.append(log.popleft())
        log.extend([now] * n)

        def undo() -> None:
            for _ in range(n):
                log.pop()
            log.extendleft(reversed(pruned))

        tx.on_rollback(undo)


def acquire(
    store: MemoryStateAdapter,
    windows: MemoryRateWindows,
    tx: MemoryTransaction,
    *,
    queue: str,
    limit: int,
    owner: str,
    lease_ms: int,
    rate: int,
    window_ms: int,
    per_key: bool,
    concurrency_limit: int | None,
) -> RateAcquisition:
    now = store.now()
    window = timedelta(milliseconds=window_ms)
    # A start counts while it lies within (now - window, now].
    cutoff = now - window
    rows = [row for row in store._jobs.values() if row.queue == queue]

    def key_of(key: str | None) -> str:
        return (key or "") if per_key else ""

    counted: dict[str, list[datetime]] = {}

    def used(k: str) -> int:
        if k not in counted:
            counted[k] = windows.counted(queue, k, cutoff)
        return len(counted[k])

    running: dict[str, int] = {}
    if concurrency_limit is not None:
        for row in rows:
            if (
                row.status is JobStatus.RUNNING
                and row.leased_until is not None
                and row.leased_until > now
            ):
                k = key_of(row.concurrency_key)
                running[k] = running.get(k, 0) + 1
    eligible = sorted(
        (row for row in rows if row.status is JobStatus.PENDING and row.scheduled_at <= now),
        key=lambda row: (row.scheduled_at, -row.priority, row.id),
    )
    leased_until = now + timedelta(milliseconds=lease_ms)
    taken: dict[str, int] = {}
    held: set[str] = set()
    acquired: list[JobRecord] = []
    for row in eligible:
        if len(acquired) >= limit and not per_key:
            # One key: the rate holds a job back if more are eligible than it allows.
            if len(eligible) > rate - used(""):
                held.add("")
            break
        k = key_of(row.concurrency_key)
        if used(k) + taken.get(k, 0) >= rate:
            held.add(k)
            if not per_key:
                break
            continue
        if len(acquired) >= limit:
            continue
        if concurrency_limit is not None and running.get(k, 0) >= concurrency_limit:
            continue
        running[k] = running.get(k, 0) + 1
        taken[k] = taken.get(k, 0) + 1
        store._touch(tx, row)
        row.status = JobStatus.RUNNING
        row.attempt += 1
        row.leased_by = owner
        row.leased_until = leased_until
        row.updated_at = now
        store._index(row)
        acquired.append(row.record())
    for k, n in taken.items():
        windows.record(tx, queue, k, now, n, cutoff)
    wait: int | None = None
    if held:
        # A held-back key gains room when the oldest start it counts leaves the window
        # (a key without counted starts: when those just made leave it).
        oldest = min(min(counted.get(k) or [now]) for k in held)
        wait = max(0, math.ceil((oldest + window - now) / _ONE_MS))
    return RateAcquisition(jobs=acquired, next_window_ms=wait)
