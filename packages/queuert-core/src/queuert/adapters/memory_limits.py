"""Acquisition under a concurrency limit in the in-memory state adapter, and the
hand-off of a completed job's place under its limit to the next job.

Operations of the in-memory store run one at a time, so counting the running
jobs and leasing within the limit cannot interleave with another acquirer.
The count reads the queue's running jobs only (a lazily cleaned set of ids),
and the candidates come off the queue's pending heap in acquisition order
until enough are found, so a refill does not scan or sort every job.
"""

from __future__ import annotations

import heapq
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
    acquired: list[JobRecord] = []
    if not store._pending.get(queue):
        return acquired
    room = limit if per_key else min(limit, concurrency_limit - running.get(None, 0))
    leased_until = now + timedelta(milliseconds=lease_ms)
    jobs = store._jobs
    passed: list[tuple[datetime, int, str]] = []
    seen: set[str] = set()
    while len(acquired) < room:
        # Looked up each time: indexing a leased row may rebuild the heaps.
        heap = store._pending.get(queue)
        if not heap:
            break
        entry = heap[0]
        row = jobs.get(entry[2])
        if row is None or row.status is not JobStatus.PENDING or row.scheduled_at != entry[0]:
            heapq.heappop(heap)  # stale: the row moved on since it was pushed
            continue
        if entry[0] > now:
            break  # the heap is in acquisition order: nothing later is due either
        heapq.heappop(heap)
        if row.id in seen:
            continue  # a second live entry of a row already passed over
        key = row.concurrency_key if per_key else None
        if running.get(key, 0) >= concurrency_limit:
            passed.append(entry)
            seen.add(row.id)
            continue
        running[key] = running.get(key, 0) + 1
        _lease(store, tx, row, owner, leased_until, now)
        acquired.append(row.record())
    heap = store._pending.setdefault(queue, [])
    for entry in passed:
        heapq.heappush(heap, entry)
    return acquired


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
    running = _running_by_key(store, row.queue, now, per_key).get(key, 0)
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
    successor = _first_due(store, row.queue, key, per_key, now)
    if successor is None:
        return completed, None
    _lease(store, tx, successor, lease.owner, now + timedelta(milliseconds=lease_ms), now)
    return completed, successor.record()


def _first_due(
    store: MemoryStateAdapter, queue: str, key: str | None, per_key: bool, now: datetime
) -> _Row | None:
    """The first due pending job of ``queue`` in acquisition order (of ``key`` with
    ``per_key``). Live entries of other keys are passed over and pushed back."""
    jobs = store._jobs
    passed: list[tuple[datetime, int, str]] = []
    found: _Row | None = None
    heap = store._pending.get(queue)
    while heap:
        entry = heap[0]
        row = jobs.get(entry[2])
        if row is None or row.status is not JobStatus.PENDING or row.scheduled_at != entry[0]:
            heapq.heappop(heap)  # stale: the row moved on since it was pushed
            continue
        if entry[0] > now:
            break  # the heap is in acquisition order: nothing later is due either
        heapq.heappop(heap)
        if per_key and row.concurrency_key != key:
            passed.append(entry)
            continue
        found = row
        break
    if passed:
        heap = store._pending.setdefault(queue, [])
        for entry in passed:
            heapq.heappush(heap, entry)
    return found


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
