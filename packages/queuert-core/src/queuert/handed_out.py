"""Leases handed out by acquisitions, so that an acquisition whose commit succeeded
but whose acknowledgement was lost does not leave its jobs leased to nobody.

Acquiring runs in a transaction of its own, retried by core when it fails
transiently. When the failed try committed after all, its jobs are ``running``
under the worker's id, yet nobody holds them: without a recovery they wait for
their lease to expire and are then counted as a failed attempt. Before
retrying, core looks for jobs of those queues leased to the same owner that it
did not hand out (or that it handed out under another attempt) and returns
them as the acquisition's result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from queuert.ports.state import StateAdapter
from queuert.records import JobFilter, JobRecord, JobStatus, Lease

_PAGE = 500
_MAX_PAGES = 20
_MAX_TRACKED = 100_000
"""Leases lost to a reap or a cancellation are never ended by their holder; the
oldest entries beyond this many are forgotten."""


class HandedOut:
    """The leases acquisitions returned whose holders have not ended them yet."""

    def __init__(self) -> None:
        self._attempts: dict[str, int] = {}

    def add(self, records: Sequence[JobRecord]) -> None:
        for record in records:
            self._attempts.pop(record.id, None)
            self._attempts[record.id] = record.attempt
        while len(self._attempts) > _MAX_TRACKED:
            del self._attempts[next(iter(self._attempts))]

    def end(self, lease: Lease) -> None:
        """The holder of ``lease`` is ending it (complete, continue, reschedule, fail)."""
        if self._attempts.get(lease.job_id) == lease.attempt:
            del self._attempts[lease.job_id]

    async def orphans(
        self, state: StateAdapter[Any], *, queues: Sequence[str], owner: str, limit: int
    ) -> list[JobRecord]:
        """Up to ``limit`` running jobs of ``queues`` leased to ``owner`` under a lease
        no acquisition handed out; ``[]`` when there are none."""
        found: list[JobRecord] = []
        after: str | None = None
        filter = JobFilter(statuses=(JobStatus.RUNNING,), queues=tuple(queues))
        for _ in range(_MAX_PAGES):
            page = await state.list_jobs(tx=None, filter=filter, after=after, limit=_PAGE)
            for record in page.items:
                if record.leased_by == owner and self._attempts.get(record.id) != record.attempt:
                    found.append(record)
            if page.next_cursor is None or len(found) >= limit:
                break
            after = page.next_cursor
        found.sort(key=lambda j: (j.scheduled_at, -j.priority, j.id))
        found = found[:limit]
        self.add(found)
        return found
