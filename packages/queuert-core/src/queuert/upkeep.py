"""A worker's upkeep besides reaping: its record in the state (so that operators and
``explain`` see which workers are alive and what they serve) and, with
``retention``, the periodic purge of chains that ended long ago."""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from queuert.control_records import WorkerInfo
from queuert.errors import UnsupportedOperationError, ValidationError

if TYPE_CHECKING:
    from queuert.worker import Worker

log = logging.getLogger("queuert.worker")

RECORD_INTERVAL_S = 10.0
"""How often a worker refreshes its record."""
FORGET_AFTER_MS = 300_000
"""Records of workers not seen for this long are dropped by the next worker that
records itself."""
PURGE_INTERVAL_S = 300.0
"""How often the purging worker deletes expired chains when ``retention`` is set."""


def check_retention(retention: object) -> timedelta | None:
    if retention is None:
        return None
    if not isinstance(retention, timedelta) or retention <= timedelta(0):
        raise ValidationError(f"retention must be a positive timedelta or None, got {retention!r}")
    return retention


class Upkeep:
    """Records the worker and, with retention, purges; called from the reap loop."""

    def __init__(self, worker: Worker[Any], retention: timedelta | None) -> None:
        self._worker = worker
        self.retention = retention
        self._recorded_at = float("-inf")
        self._purged_at = float("-inf")
        self._records = True

    def _info(self) -> WorkerInfo:
        worker = self._worker
        return WorkerInfo(
            id=worker.id,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=tuple(worker.queue_names),
            concurrency=worker.concurrency,
            purges=self.retention is not None,
        )

    async def tick(self) -> None:
        now = time.monotonic()
        if self._records and now - self._recorded_at >= RECORD_INTERVAL_S:
            self._recorded_at = now
            try:
                await self._worker.app.state.record_worker(
                    tx=None, worker=self._info(), forget_ms=FORGET_AFTER_MS
                )
            except UnsupportedOperationError:
                self._records = False  # an adapter without worker records
            except Exception as exc:
                log.warning("recording worker %s failed: %s", self._worker.id, exc)
        if self.retention is not None and now - self._purged_at >= PURGE_INTERVAL_S:
            self._purged_at = now
            try:
                await self._purge(self.retention)
            except Exception as exc:
                log.warning("purging ended chains failed: %s", exc)

    async def _purge(self, retention: timedelta) -> None:
        app = self._worker.app
        # One worker at a time: of the recorded workers that purge, the one with the
        # smallest id does; the others leave it alone.
        workers = await app.state.list_workers(tx=None)
        ids = [w.id for w in workers if w.purges]
        if ids and min(ids) != self._worker.id:
            return
        counts = await app.state.count_jobs(tx=None)
        deleted = await app.purge(ended_before=counts.now - retention, statuses=_ENDED)
        if deleted:
            log.info("purged %d chains that ended more than %s ago", deleted, retention)

    async def stop(self) -> None:
        if not self._records or self._recorded_at == float("-inf"):
            return  # never recorded (never started), nothing to remove
        try:
            await self._worker.app.state.remove_worker(tx=None, worker_id=self._worker.id)
        except Exception as exc:
            log.warning("removing the record of worker %s failed: %s", self._worker.id, exc)


_ENDED = ("completed", "failed", "cancelled")
