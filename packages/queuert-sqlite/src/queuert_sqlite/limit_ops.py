"""The limited acquisitions of the SQLite state adapter: concurrency limits
(statements in :mod:`queuert_sqlite.limits`) and rate limits (in
:mod:`queuert_sqlite.rates`)."""

from __future__ import annotations

from typing import Any

import aiosqlite

from queuert.rate_records import RateAcquisition
from queuert.records import JobRecord
from queuert_sqlite import limits, rates
from queuert_sqlite.base import SqliteBase
from queuert_sqlite.clock import now_us
from queuert_sqlite.rows import acquisition_order, job_from_row

Connection = aiosqlite.Connection


class LimitOps(SqliteBase):
    """Acquisition under concurrency limits (capability ``concurrency_limits``) and
    rate limits (capability ``rate_limits``)."""

    async def acquire_limited_jobs(
        self,
        *,
        tx: Connection | None,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        concurrency_limit: int,
        per_key: bool,
    ) -> list[JobRecord]:
        if limit <= 0:
            return []
        now = now_us()
        jobs = self._sql.jobs_table
        params: tuple[Any, ...]
        if per_key:
            sql = limits.acquire_under_key_limit(jobs)
            params = (queue, now, concurrency_limit, limit, owner, now + lease_ms * 1000)
        else:
            sql = limits.acquire_under_limit(jobs)
            params = (
                owner,
                now + lease_ms * 1000,
                now,
                queue,
                now,
                limit,
                concurrency_limit,
                queue,
                now,
            )
        rows = await self._db.write(tx, sql, params)
        acquired = [job_from_row(row) for row in rows]
        acquired.sort(key=acquisition_order)
        return acquired

    # -- rate limits (statements in rates) -------------------------------------------------

    async def acquire_rate_limited_jobs(
        self,
        *,
        tx: Connection | None,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        rate: int,
        window_ms: int,
        per_key: bool,
        concurrency_limit: int | None,
    ) -> RateAcquisition:
        if limit <= 0:
            return RateAcquisition()
        async with self._db.atomic(tx) as conn:
            return await rates.acquire(
                self._db,
                conn,
                self.table_prefix,
                queue=queue,
                limit=limit,
                owner=owner,
                lease_ms=lease_ms,
                rate=rate,
                window_ms=window_ms,
                per_key=per_key,
                concurrency_limit=concurrency_limit,
            )
