"""Acquisition under a concurrency limit in the in-memory state adapter, and the
hand-off of a completed job's place under its limit to the next job.

Operations of the in-memory store run one at a time, so counting the running
jobs and leasing within the limit cannot interleave with another acquirer.
The count reads the queue's running jobs only (a lazily cleaned set of ids),
and the candidates come off the queue's pending heap in acquisition order
until enough are found, so a refill does not scan or sort every job. A
hand-off under a per-key limit reads its key's own set and heap, so it does
not pass over the jobs of every other key due before the key's next one.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from queuert.records import JobRecord, JobStatus, Lease

if TYPE_CHECKING:
    from queuert.adapters.memory_rows import _Row
    from queuert.adapters.memory_state import MemoryStateAdapter, MemoryTransaction


def _running_by_key(
    store: MemoryStateAdapter, queue: str, now: datetime, per_key: bool
) -> dict[str | None, int]:
    """The queue's running jobs with a valid lease, per key (all under ``None``
    without ``per_key``). Drops ids that are no longer running from the set."""
    ids = store._running.get(queue)
    counts: dict[str | None, int] = {}
    if not ids:
        return counts
    jobs = store._jobs
    gone: list[str] = []
    for job_id in ids:
        row = jobs.get(job_id)
        if row is None or row.status is not JobStatus.RUNNING or row.queue != queue:
            gone.append(job_id)
        elif row.leased_until is not None and row.leased_until > now:
            key = row.concurrency_key if per_key else None
            counts[key] = counts.get(key, 0) + 1
    ids.difference_update(gone)
    return counts


def _running_of_key(store: MemoryStateAdapter, queue: str, key: str, now: datetime) -> int:
    """The running jobs with a valid lease of ``key`` in ``queue``, read from that
    key's set alone. Drops ids that are no longer running from the set."""
    ids = store._running_keyed.get((queue, key))
    if not ids:
        return 0
    jobs = store._jobs
    count = 0
    gone: list[str] = []
    for job_id in ids:
        row = jobs.get(job_id)
        if row is None or row.status is not JobStatus.RUNNING:
            gone.append(job_id)
        elif row.leased_until is not None and row.leased_until > now:
            count += 1
    ids.difference_update(gone)
    return count


def acquire_limited(
    store: MemoryStateAdapter,
    tx: MemoryTransaction,
    queue: str,
    limit: int,
    owner: str,
    lease_ms: int,
    concurrency_limit: int,
    per_key: bool,
) -> list[JobRecord]:
    """Lease up to ``limit`` due jobs of ``queue`` in acquisition order, leaving
    at most ``concurrency_limit`` running with a valid lease (per key with
    ``per_key``; jobs without a key are one group). A job whose key is full is
    passed over, not leased, and stays where it was in the heap."""
    now = store.now()
    running = _running_by_key(store, queue, now, per_key)
    room = limit if per_key else min(limit, concurrency_limit - running.get(None, 0))

    def has_room(row: _Row) -> bool:
        key = row.concurrency_key if per_key else None
        if running.get(key, 0) >= concurrency_limit:
            return False
        running[key] = running.get(key, 0) + 1
        return True

    rows = _take_due(store, store._pending.get(queue), now, room, has_room)
    leased_until = now + timedelta(milliseconds=lease_ms)
    for row in rows:
        _lease(store, tx, row, owner, leased_until, now)
    return [row.record() for row in rows]


def _take_due(
    store: MemoryStateAdapter,
    heap: list[tuple[datetime, int, str]] | None,
    now: datetime,
    wanted: int,
    accept: Callable[[_Row], bool],
) -> list[_Row]:
    """Up to ``wanted`` due pending rows that ``accept`` takes, in acquisition
    order, off ``heap`` (a queue's pending heap, or a key's); the rows it declines
    are passed over and keep their place in the heap. The caller leases the rows
    taken."""
    jobs = store._jobs
    taken: list[_Row] = []
    passed: list[tuple[datetime, int, str]] = []
    seen: set[str] = set()
    while heap and len(taken) < wanted:
        entry = heap[0]
        row = jobs.get(entry[2])
        if row is None or row.status is not JobStatus.PENDING or row.scheduled_at != entry[0]:
            heapq.heappop(heap)  # stale: the row moved on since it was pushed
            continue
        if entry[0] > now:
            break  # the heap is in acquisition order: nothing later is due either
        heapq.heappop(heap)
        if row.id in seen:
            continue  # a second live entry of a row already looked at
        seen.add(row.id)
        if accept(row):
            taken.append(row)
        else:
            passed.append(entry)
    if passed and heap is not None:
        for entry in passed:
            heapq.heappush(heap, entry)
    return taken


def hand_off(
    store: MemoryStateAdapter,
    tx: MemoryTransaction,
    lease: Lease,
    output: str,
    lease_ms: int,
    concurrency_limit: int,
    per_key: bool,
    lease_margin_ms: int,
) -> tuple[JobRecord, JobRecord | None]:
    """Complete the job of ``lease`` and lease the first due job of its queue (of
    its key with ``per_key``; jobs without a key are one group) to ``lease.owner``,
    when the completed job's lease had ``lease_margin_ms`` or more left and its
    queue (key) had no more than ``concurrency_limit`` jobs running with a valid
    lease, the completed one included. Raises LeaseLostError, writing nothing,
    when the lease is gone."""
    row = store._guarded(lease)  # before any write: a lost lease leaves everything as it was
    now = store.now()
    key = row.concurrency_key if per_key else None
    # Read before the completion, so that the completed job is counted while its
    # lease is valid: a lease that expired freed its place to acquirers already.
    if key is None:
        running = _running_by_key(store, row.queue, now, per_key).get(None, 0)
    else:
        running = _running_of_key(store, row.queue, key, now)
    left = row.leased_until - now if row.leased_until is not None else None
    # A lease exactly at its end is no longer valid (acquirers count it free), so
    # a margin of zero still needs some lease left.
    handing = (
        left is not None
        and left > timedelta(0)
        and left >= timedelta(milliseconds=lease_margin_ms)
        and running <= concurrency_limit
    )
    completed = store._complete_job(tx, lease, output)
    if not handing:
        return completed, None
    if key is None:
        # The keyless group of a per-key queue (or the whole queue): the queue's heap.
        heap = store._pending.get(row.queue)
        found = _take_due(
            store, heap, now, 1, lambda due: not per_key or due.concurrency_key is None
        )
    else:
        found = _take_due(store, store._pending_keyed.get((row.queue, key)), now, 1, _any)
    if not found:
        return completed, None
    _lease(store, tx, found[0], lease.owner, now + timedelta(milliseconds=lease_ms), now)
    return completed, found[0].record()


def _any(row: _Row) -> bool:
    return True


def _lease(
    store: MemoryStateAdapter,
    tx: MemoryTransaction,
    row: _Row,
    owner: str,
    leased_until: datetime,
    now: datetime,
) -> None:
    store._touch(tx, row)
    row.status = JobStatus.RUNNING
    row.attempt += 1
    row.leased_by = owner
    row.leased_until = leased_until
    row.updated_at = now
    store._index(row)
