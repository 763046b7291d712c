"""The worker's acquisitions: leasing jobs for its free slots and its local queue,
from its plain, limited and rate-limited queues, and how long it may idle."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from queuert import limits, rates
from queuert.ports.state import Tx
from queuert.prefetching import Prefetching
from queuert.records import JobRecord


class Acquisition(Prefetching[Tx]):
    """Acquiring jobs for :class:`~queuert.worker.Worker`."""

    if TYPE_CHECKING:
        poll_interval: float
        _log: logging.LoggerAdapter[logging.Logger]

    async def _acquire(
        self,
        queues: list[str],
        ahead: list[tuple[str, limits.ConcurrencyLimit]],
        for_slots: list[tuple[str, limits.ConcurrencyLimit]],
        rated: list[tuple[str, rates.RateLimit]],
        *,
        free: int,
        room: int,
        sent: float,
    ) -> tuple[list[JobRecord], float | None]:
        """Lease up to ``free + room`` jobs of the plain ``queues``, then of the
        limited queues that are prefetched (``ahead``) while fewer came, then, while
        fewer than ``free`` came, of the other limited queues (``for_slots``) and the
        rated queues for the rest; returns them (plain ones first) and how long a
        rate holds jobs back (``None``).
        ``sent``: when the acquisition began (monotonic), which leases count from."""
        state = self.app.state
        records: list[JobRecord] = []
        if queues:
            records = await state.acquire_jobs(
                tx=None, queues=queues, limit=free + room, owner=self.id, lease_ms=self.lease_ms
            )
        plain = len(records)
        try:
            if ahead and plain < free + room:
                records += await limits.acquire_jobs(
                    state,
                    plain=[],
                    limited=ahead,
                    limit=free + room - plain,
                    owner=self.id,
                    lease_ms=self.lease_ms,
                )
            if for_slots and len(records) < free:
                records += await limits.acquire_jobs(
                    state,
                    plain=[],
                    limited=for_slots,
                    limit=free - len(records),
                    owner=self.id,
                    lease_ms=self.lease_ms,
                )
            window_wait = None
            if rated and len(records) < free:
                got = await rates.acquire_jobs(
                    state,
                    self.app.queues,
                    rated=rated,
                    limit=free - len(records),
                    owner=self.id,
                    lease_ms=self.lease_ms,
                )
                records += got.jobs
                window_wait = got.wait_s
        except Exception:
            # The jobs already leased are this worker's to run.
            self._reserved = 0
            self._take(records, sent)
            raise
        return records, window_wait

    def _take(self, records: list[JobRecord], sent: float) -> None:
        """Run the acquired jobs: those of queues that are not prefetched at once
        (they were acquired for free slots), the others through the local queue,
        oldest first."""
        queued: list[JobRecord] = []
        for record in records:
            if self._prefetches(self.app.queues[record.queue]):
                queued.append(record)
            else:
                self._spawn(record, acquired_at=sent)
        if queued:
            self._prefetched(queued, sent)

    async def _idle_timeout(self, queues: list[str]) -> float:
        try:
            until = await self.app.state.time_until_next_job(tx=None, queues=queues)
        except Exception as exc:
            self._log.warning("reading the next job's time failed: %s", exc)
            return self.poll_interval
        if until is None:
            return self.poll_interval
        return max(0.0, min(self.poll_interval, until))
