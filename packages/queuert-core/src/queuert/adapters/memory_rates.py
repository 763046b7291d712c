"""The in-memory adapter's acquisition under a rate limit (see :mod:`queuert.rates`).

Runs inside a :class:`~queuert.adapters.memory_state.MemoryTransaction` the adapter
holds (``MemoryStateAdapter._run``), so acquisitions take turns; the window
counts are restored when the transaction rolls back. A scan of the queue's jobs:
the reference for what the SQL adapters compute.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from queuert.rate_records import RateAcquisition
from queuert.records import JobRecord, JobStatus

if TYPE_CHECKING:
    from queuert.adapters.memory_state import MemoryStateAdapter, MemoryTransaction

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


class MemoryRateWindows:
    """Per (queue, key): the start of the window last counted in (milliseconds since
    the epoch) and the jobs started within it."""

    def __init__(self) -> None:
        self.windows: dict[tuple[str, str], tuple[int, int]] = {}

    def used(self, queue: str, key: str, window_start: int) -> int:
        start, started = self.windows.get((queue, key), (window_start, 0))
        # A window counted by a later clock reading still holds (never reset backwards).
        return started if start >= window_start else 0

    def add(self, tx: MemoryTransaction, queue: str, key: str, window_start: int, n: int) -> None:
        slot = (queue, key)
        before = self.windows.get(slot)
        start, started = before if before is not None else (window_start, 0)
        if start >= window_start:
            self.windows[slot] = (start, started + n)
        else:
            self.windows[slot] = (window_start, n)

        def undo() -> None:
            if before is None:
                self.windows.pop(slot, None)
            else:
                self.windows[slot] = before

        tx.on_rollback(undo)


def epoch_ms(moment: datetime) -> int:
    """Whole milliseconds since the Unix epoch of an aware datetime."""
    return (moment - _EPOCH) // _ONE_MS


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
    now_ms = epoch_ms(now)
    window_start = now_ms // window_ms * window_ms
    rows = [row for row in store._jobs.values() if row.queue == queue]

    def key_of(key: str | None) -> str:
        return (key or "") if per_key else ""

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
    held_back = False
    acquired: list[JobRecord] = []
    for row in eligible:
        if len(acquired) >= limit and not per_key:
            # One key: the rate holds a job back if more are eligible than it allows.
            held_back = held_back or len(eligible) > rate - windows.used(queue, "", window_start)
            break
        k = key_of(row.concurrency_key)
        if windows.used(queue, k, window_start) + taken.get(k, 0) >= rate:
            held_back = True
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
        windows.add(tx, queue, k, window_start, n)
    wait = window_start + window_ms - now_ms if held_back else None
    return RateAcquisition(jobs=acquired, next_window_ms=wait)
