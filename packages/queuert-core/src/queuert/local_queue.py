"""A worker's local queue: jobs acquired ahead of its free slots
(``app.worker(prefetch=N)``), so that a slot freed by a handler takes the next job
without a round trip to the database.

The rules a prefetched job follows:

- It is leased when acquired, like any acquired job, so no other worker takes it.
  A queue with a concurrency limit is prefetched within its limit only (the
  database counts a leased job as running); a per-key limited queue only where
  completions hand their places on (otherwise acquisitions would pass over the
  keys the worker holds); rate-limited queues are not prefetched (a rate counts
  a leased job as started). A job that a completion handed its place to waits
  here too until a slot is free.
- It starts in acquisition order (oldest ``scheduled_at`` first, then higher
  priority, then id) as soon as a slot is free.
- It never waits longer than half its lease (:attr:`LocalQueue.max_wait`, counted
  from before the acquire request was sent): one still waiting then is released
  back to ``pending`` with its attempt refunded, its ``scheduled_at`` and its
  earlier error kept, so that its lease never runs out unstarted and any worker
  may take it again.
- One that waited longer than :attr:`LocalQueue.renew_after` before it started has
  its lease renewed to the worker's full ``lease_ms`` before its handler runs, so a
  handler always gets as much lease as without prefetching; a job whose lease was
  revoked meanwhile (its chain cancelled) does not run.
- A job whose lease is revoked while it waits (lease-lost signal) is dropped
  without running. On a graceful stop every job still waiting is released at
  once; a worker that is killed leaves their leases to expire, as for running jobs.

The worker asks for more jobs than it has free slots only while a backlog is
known (its last acquisition got all it asked for, or a job was scheduled while
every slot was busy), and refills the queue once it is down to half its
capacity (:attr:`LocalQueue.low`), not on every started job. The queue holds at
most what the worker expects to start within
:data:`HORIZON_S` (from the mean time its handlers hold a slot), capped by the
``prefetch`` option: fast handlers get a deep queue, slow ones (for which a round
trip is negligible) little or none, so a worker does not hoard jobs that an
idle worker could run. Until a handler has ended the queue holds nothing.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass
from datetime import datetime

from queuert.records import JobRecord

HORIZON_S = 0.1
"""The local queue holds about as many jobs as the worker starts in this many
seconds: long enough to hide an acquire round trip, short enough that a job does
not wait for a busy worker while another is idle."""
HELD_BACK_S = 1.0
"""The longest a worker whose limits held an acquisition back waits for its own
jobs to free places before it refills its local queue again."""
_RENEW_AFTER_MAX_S = 1.0
_SMOOTHING = 0.1
"""Weight of a new handler duration in the running mean."""


@dataclass(slots=True)
class Prefetched:
    """A job waiting in the local queue, with when its acquisition was sent
    (monotonic clock): its lease counts from then."""

    record: JobRecord
    acquired_at: float


class LocalQueue:
    """The jobs acquired ahead of free slots, in acquisition order. Not thread-safe:
    used from the worker's event loop only."""

    def __init__(self, *, limit: int, concurrency: int, lease_ms: int) -> None:
        self.limit = limit
        self.concurrency = concurrency
        self.max_wait = lease_ms / 2000
        """Seconds a job may wait before it is released back (half its lease)."""
        self.renew_after = min(lease_ms / 10_000, _RENEW_AFTER_MAX_S)
        """Seconds of waiting after which a job's lease is renewed when it starts
        (a tenth of the lease, at most 1 s)."""
        self._heap: list[tuple[datetime, int, str, int, Prefetched]] = []
        self._mean_run: float | None = None
        self._held_back = False
        self._freed = 0
        self._held_back_until = 0.0

    def __len__(self) -> int:
        return len(self._heap)

    @property
    def capacity(self) -> int:
        """How many jobs the queue may hold now."""
        if self.limit == 0 or self._mean_run is None:
            return 0
        expected = self.concurrency * HORIZON_S / max(self._mean_run, 1e-6)
        return min(self.limit, int(expected))

    @property
    def room(self) -> int:
        return max(0, self.capacity - len(self._heap))

    @property
    def low(self) -> bool:
        """Whether the queue should be refilled: it has room and holds at most half
        its capacity (a low-water mark, so that not every started job costs a
        round trip), and limits are not holding acquisitions back (see
        :meth:`acquired`)."""
        capacity = self.capacity
        if len(self._heap) >= capacity or len(self._heap) > capacity // 2:
            return False
        return not (
            self._held_back
            and self._freed < self.concurrency
            and time.monotonic() < self._held_back_until
        )

    def acquired(self, *, short: bool, room: int, limited: bool) -> None:
        """An acquisition ended; ``short``: it got fewer jobs than asked for;
        ``room``: how many it asked for beyond the free slots; ``limited``: it was
        of concurrency-limited queues alone. When limits held it back, the queue is
        not refilled ahead of free slots until as many places as the worker has
        slots were freed by its jobs (:meth:`freed`), or :data:`HELD_BACK_S` passed
        (places may free elsewhere): an acquisition under a limit costs the
        database a look at the queue, so one per freed place would cost more than
        it brings. An acquisition that got all the room it asked for ends the
        wait."""
        if short and limited:
            self._held_back = True
            self._freed = 0
            self._held_back_until = time.monotonic() + HELD_BACK_S
        elif not short and room > 0:
            self._held_back = False

    def freed(self) -> None:
        """A job of a concurrency-limited queue ended, freeing its place."""
        self._freed += 1

    def ran(self, seconds: float) -> None:
        """A handler held its slot for ``seconds``."""
        if self._mean_run is None:
            self._mean_run = seconds
        else:
            self._mean_run += _SMOOTHING * (seconds - self._mean_run)

    def push(self, entries: list[Prefetched]) -> None:
        for entry in entries:
            record = entry.record
            key = (record.scheduled_at, -record.priority, record.id, record.attempt, entry)
            heapq.heappush(self._heap, key)

    def pop(self) -> Prefetched | None:
        """The job to start next, or ``None``."""
        if not self._heap:
            return None
        return heapq.heappop(self._heap)[-1]

    def take(self, job_id: str) -> list[Prefetched]:
        """Remove and return the waiting jobs with this id."""
        taken = [item[-1] for item in self._heap if item[2] == job_id]
        if taken:
            self._heap = [item for item in self._heap if item[2] != job_id]
            heapq.heapify(self._heap)
        return taken

    def stale(self, now: float) -> list[Prefetched]:
        """Remove and return the jobs that have waited :attr:`max_wait` or longer."""
        limit = now - self.max_wait
        stale = [item[-1] for item in self._heap if item[-1].acquired_at <= limit]
        if stale:
            self._heap = [item for item in self._heap if item[-1].acquired_at > limit]
            heapq.heapify(self._heap)
        return stale

    def next_stale_in(self, now: float) -> float | None:
        """Seconds until the longest-waiting job becomes stale; ``None`` when empty."""
        if not self._heap:
            return None
        oldest = min(item[-1].acquired_at for item in self._heap)
        return max(0.0, oldest + self.max_wait - now)

    def drain(self) -> list[Prefetched]:
        """Remove and return every waiting job."""
        entries = [item[-1] for item in sorted(self._heap)]
        self._heap = []
        return entries
