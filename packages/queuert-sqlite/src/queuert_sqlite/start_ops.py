"""The operations of the SQLite state adapter that start chains only once:
deduplicated jobs and schedule slots."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import aiosqlite

from queuert.records import DedupKey, NewJob, ScheduleSlot
from queuert_sqlite import limits
from queuert_sqlite.blocker_ops import BlockerOps
from queuert_sqlite.clock import from_us, now_us, to_us

Connection = aiosqlite.Connection


class StartOps(BlockerOps):
    """Deduplicated jobs (capability ``deduplication``) and schedules (capability
    ``schedules``)."""

    async def create_deduplicated_jobs(
        self,
        *,
        tx: Connection | None,
        jobs: Sequence[NewJob],
        dedup: Sequence[DedupKey],
        blocker_chain_ids: Sequence[str] | None = None,
        run_on_blocker_failure: bool = False,
    ) -> list[str]:
        """As the port says; the key is taken in the write transaction that inserts
        the job, under the key table's primary key."""
        sql = self._dedup_sql
        holders: list[str] = []
        async with self._db.atomic(tx) as conn:
            # Read once: the write lock keeps every blocker chain as it is now.
            wait = (
                None
                if blocker_chain_ids is None
                else await self._waiting_state(conn, blocker_chain_ids, run_on_blocker_failure)
            )
            for job, request in zip(jobs, dedup, strict=True):
                now = now_us()
                window = None if request.window_ms is None else request.window_ms * 1000
                params = (job.chain_name, request.key, job.chain_id, now, request.scope.value)
                taken = await self._db.run(conn, sql.take_key, (*params, window))
                if not taken:
                    rows = await self._db.run(conn, sql.holder, (job.chain_name, request.key))
                    holders.append(rows[0][0])
                    continue
                await self.create_jobs(tx=conn, jobs=[job])
                await self._db.run(conn, sql.mark_key, (request.key, job.id))
                if blocker_chain_ids is not None and wait is not None:
                    await self._wait_on(conn, [job.id], blocker_chain_ids, wait)
                holders.append(job.chain_id)
        return holders

    async def start_scheduled_chain(
        self, *, tx: Connection | None, schedule: str, slot_time: datetime, job: NewJob
    ) -> bool:
        prefix = self.table_prefix
        slot_us = to_us(slot_time, "slot_time")
        async with self._db.atomic(tx) as conn:
            rows = await self._db.run(
                conn,
                limits.insert_schedule_slot(prefix),
                (schedule, slot_us, job.chain_id, now_us()),
            )
            if not rows:
                return False
            await self.create_jobs(tx=conn, jobs=[job])
        return True

    async def get_last_schedule_slot(
        self, *, tx: Connection | None, schedule: str
    ) -> ScheduleSlot | None:
        rows = await self._db.read(tx, limits.last_schedule_slot(self.table_prefix), (schedule,))
        return _slot(rows)

    async def get_chain_schedule_slot(
        self, *, tx: Connection | None, chain_id: str
    ) -> ScheduleSlot | None:
        rows = await self._db.read(tx, limits.chain_schedule_slot(self.table_prefix), (chain_id,))
        return _slot(rows)


def _slot(rows: Sequence[Any]) -> ScheduleSlot | None:
    if not rows:
        return None
    schedule, slot_us, chain_id = rows[0]
    return ScheduleSlot(schedule=schedule, slot_time=from_us(slot_us), chain_id=chain_id)
