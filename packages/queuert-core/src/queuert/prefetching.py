"""The worker's side of its local queue (:mod:`queuert.local_queue`): starting
prefetched jobs in freed slots, releasing those that waited too long or that a
stop leaves unstarted, and dropping those whose lease was revoked."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from queuert.errors import LeaseLostError
from queuert.job_runner import JobRunner, job_extra
from queuert.local_queue import Prefetched
from queuert.notifications import PendingNotifications
from queuert.ports.state import Tx
from queuert.records import JobRecord, JobStatus

log = logging.getLogger("queuert.worker")


class Prefetching(JobRunner[Tx]):
    """Moves jobs from the worker's local queue into its slots."""

    _background: set[asyncio.Task[None]]

    def _prefetched(self, records: Sequence[JobRecord], acquired_at: float) -> None:
        """Queue jobs acquired ahead of free slots and start those that fit now."""
        self._local.push([Prefetched(record, acquired_at) for record in records])
        self._start_prefetched()

    def _handed(self, record: JobRecord, acquired_at: float) -> None:
        """A job that a completion of this worker handed its place under a limit to:
        it starts in the next free slot, through the local queue (a stopping worker
        releases it). ``acquired_at``: when the completion was sent."""
        self.app.metrics.incr("jobs.handed_off")
        entry = Prefetched(record, acquired_at)
        if self._stopping.is_set():
            self._release_later([entry], why="the worker stopped")
        else:
            self._local.push([entry])
            self._start_prefetched()

    def _start_prefetched(self) -> None:
        """Start waiting jobs, oldest first, in the slots that are free and not kept
        for an acquisition in flight. A job that waited too long is released instead
        of started; one that waited a while has its lease renewed first."""
        if self._stopping.is_set():
            return
        local = self._local
        now = time.monotonic()
        while self._running + self._reserved < self.concurrency:
            entry = local.pop()
            if entry is None:
                return
            waited = now - entry.acquired_at
            if waited >= local.max_wait:
                self._release_later([entry], why="it waited too long")
                continue
            self._spawn(
                entry.record, acquired_at=entry.acquired_at, renew=waited > local.renew_after
            )

    def _release_stale(self) -> None:
        """Release the waiting jobs that reached half their lease unstarted."""
        stale = self._local.stale(time.monotonic())
        if stale:
            self._release_later(stale, why="it waited too long")

    def _release_later(self, entries: list[Prefetched], *, why: str) -> None:
        task = asyncio.create_task(self._release_prefetched(entries, why=why))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _release_prefetched(self, entries: list[Prefetched], *, why: str) -> None:
        """Return unstarted jobs to ``pending`` with their attempt refunded, keeping
        their place and earlier error, and tell idle workers. A job whose release
        fails is left to its lease's expiry."""
        if not entries:
            return
        state = self.app.state
        results = await asyncio.gather(
            *(
                state.reschedule_job(
                    tx=None,
                    lease=entry.record.lease,
                    error=entry.record.error,
                    scheduled_at=entry.record.scheduled_at,
                    refund_attempt=True,
                )
                for entry in entries
            ),
            return_exceptions=True,
        )
        batch = PendingNotifications()
        for entry, result in zip(entries, results, strict=True):
            record = entry.record
            extra = job_extra(record, self.id)
            if isinstance(result, LeaseLostError):
                log.info(
                    "prefetched job %s was no longer leased to this worker", record.id, extra=extra
                )
            elif isinstance(result, BaseException):
                log.warning(
                    "releasing prefetched job %s failed (%s); its lease is left to expire",
                    record.id,
                    result,
                    extra=extra,
                )
            else:
                self.app.metrics.incr("jobs.released")
                log.info("prefetched job %s released unstarted: %s", record.id, why, extra=extra)
                batch.scheduled[record.queue] += 1
        await self.app.publish(batch)

    async def _drop_lost_prefetched(self, job_id: str) -> None:
        """A lease-lost signal for ``job_id``: drop its waiting entries whose lease is
        gone (its chain was cancelled, or it was reaped) without running them."""
        entries = self._local.take(job_id)
        if not entries:
            return
        try:
            current = await self.app.state.get_job(tx=None, job_id=job_id)
        except Exception as exc:
            log.warning("checking the lease of job %s failed: %s", job_id, exc)
            # Kept: a job that waited has its lease renewed, so checked, when it starts.
            self._keep(entries)
            return
        kept = []
        for entry in entries:
            record = entry.record
            if (
                current is not None
                and current.status is JobStatus.RUNNING
                and current.leased_by == record.leased_by
                and current.attempt == record.attempt
            ):
                kept.append(entry)
                continue
            self.app.metrics.incr("jobs.lease_lost")
            log.warning(
                "prefetched job %s lost its lease before it started; not run",
                job_id,
                extra=job_extra(record, self.id),
            )
        self._keep(kept)

    def _keep(self, entries: list[Prefetched]) -> None:
        if self._stopping.is_set():
            self._release_later(entries, why="the worker stopped")
        else:
            self._local.push(entries)
            self._start_prefetched()

    async def _release_all_prefetched(self) -> None:
        """On stop: release every waiting job at once, and wait for the releases
        under way."""
        await self._release_prefetched(self._local.drain(), why="the worker stopped")
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
