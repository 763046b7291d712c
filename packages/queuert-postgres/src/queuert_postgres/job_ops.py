"""Operations of the PostgreSQL state adapter on the jobs a worker runs: create,
acquire, lease, complete, continue, reschedule, fail, reap and cancel.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg

from queuert.adapter_support import CreatedRecords
from queuert.errors import LeaseLostError, QueuertError
from queuert.records import (
    LEASE_EXPIRED_ERROR,
    ChainRecord,
    JobError,
    JobRecord,
    Lease,
    NewJob,
)
from queuert_postgres.adapter_base import PostgresAdapterBase
from queuert_postgres.connections import PostgresTx
from queuert_postgres.job_args import alike_chain_starts, continue_args, new_job_args, shared_fields
from queuert_postgres.keyed_jobs import keyed_job_statements
from queuert_postgres.limits import limit_statements
from queuert_postgres.rows import chain_record, completed_record, completion_signals, job_record

_LEASE_EXPIRED_JSON = LEASE_EXPIRED_ERROR.to_json()


class JobOps(PostgresAdapterBase):
    """Writing jobs (part of :class:`~queuert_postgres.PostgresStateAdapter`)."""

    # -- writing jobs -------------------------------------------------------------

    async def create_jobs(
        self, *, tx: PostgresTx | None, jobs: Sequence[NewJob]
    ) -> Sequence[JobRecord]:
        if not jobs:
            return []
        # In the adapter's own transaction (one statement), the signals leave after
        # its commit (see after_commit); in the caller's, with the statement.
        quiet = tx is None and self._after_commit.bound
        sql = self._quiet_sql if quiet else self._sql
        if any(j.concurrency_key is not None for j in jobs):
            row = await self._fetchrow(
                tx,
                limit_statements(sql).create_keyed_jobs,
                *(list(column) for column in zip(*map(new_job_args, jobs), strict=True)),
                [j.concurrency_key for j in jobs],
            )
        elif len(jobs) == 1:
            row = await self._fetchrow(tx, sql.create_job, *new_job_args(jobs[0]))
        elif alike_chain_starts(jobs):
            row = await self._fetchrow(
                tx,
                sql.create_chain_starts,
                [j.id for j in jobs],
                [j.input for j in jobs],
                *shared_fields(jobs[0]),
            )
        else:
            row = await self._fetchrow(
                tx,
                sql.create_jobs,
                [j.id for j in jobs],
                [j.chain_id for j in jobs],
                [j.chain_name for j in jobs],
                [j.queue for j in jobs],
                [j.position for j in jobs],
                [j.input for j in jobs],
                [j.max_attempts for j in jobs],
                [j.priority for j in jobs],
                [j.scheduled_at for j in jobs],
                [j.delay_ms for j in jobs],
                [j.trace_context for j in jobs],
            )
        assert row is not None
        if quiet:
            self._after_commit.send([("scheduled", j.queue) for j in jobs])
        now: datetime = row[0]

        def scheduled_at(job: NewJob) -> datetime:
            # What the statement stored: COALESCE(scheduled_at, now + delay_ms).
            if job.scheduled_at is None:
                return now + timedelta(milliseconds=job.delay_ms)
            return job.scheduled_at.astimezone(now.tzinfo)

        return CreatedRecords(jobs, created_at=now, scheduled_at=scheduled_at)

    async def acquire_jobs(
        self,
        *,
        tx: PostgresTx | None,
        queues: Sequence[str],
        limit: int,
        owner: str,
        lease_ms: int,
    ) -> list[JobRecord]:
        if limit <= 0 or not queues:
            return []
        rows = await self._fetch(
            tx, self._sql.acquire_jobs, list(dict.fromkeys(queues)), limit, owner, lease_ms
        )
        jobs = [job_record(row) for row in rows]
        jobs.sort(key=lambda j: (j.scheduled_at, -j.priority, j.id))
        return jobs

    async def renew_lease(self, *, tx: PostgresTx | None, lease: Lease, lease_ms: int) -> datetime:
        row = await self._fetchrow(
            tx, self._sql.renew_lease, lease.job_id, lease.owner, lease.attempt, lease_ms
        )
        if row is None:
            raise LeaseLostError(lease.job_id)
        leased_until: datetime = row[0]
        return leased_until

    async def lock_job(self, *, tx: PostgresTx, lease: Lease) -> JobRecord:
        row = await self._fetchrow(tx, self._sql.lock_job, lease.job_id, lease.owner, lease.attempt)
        if row is None:
            raise LeaseLostError(lease.job_id)
        return job_record(row)

    async def verify_lease(self, *, tx: PostgresTx, lease: Lease) -> JobRecord:
        row = await self._fetchrow(
            tx, self._sql.verify_lease, lease.job_id, lease.owner, lease.attempt
        )
        if row is None:
            raise LeaseLostError(lease.job_id)
        return job_record(row)

    async def complete_job(self, *, tx: PostgresTx | None, lease: Lease, output: str) -> JobRecord:
        if tx is None:
            # Completions running at the same time share one statement (see batching).
            self._check_not_holding()
            row = await self._completions.submit((lease, output))
        else:
            row = await self._fetchrow(
                tx, self._sql.complete_job, lease.job_id, lease.owner, lease.attempt, output
            )
        if row is None:
            raise LeaseLostError(lease.job_id)
        return completed_record(row)

    async def complete_locked_job(
        self, *, tx: PostgresTx, lease: Lease, output: str
    ) -> JobRecord | None:
        """As the port says; in a leased transaction of this adapter, the signals (the
        chain's completion, the jobs it unblocked) are sent after the commit (see
        :mod:`queuert_postgres.after_commit`)."""
        signals = self._after_commit.held(tx)
        if signals is None:
            return await self.complete_job(tx=tx, lease=lease, output=output)
        row = await self._fetchrow(
            tx, self._quiet_sql.complete_job, lease.job_id, lease.owner, lease.attempt, output
        )
        if row is None:
            raise LeaseLostError(lease.job_id)
        record = completed_record(row)
        signals.append(("chain", record.chain_id))
        signals.extend(("scheduled", queue) for queue in record.unblocked_queues)
        return record

    async def _complete_many(
        self, items: Sequence[tuple[Lease, str]]
    ) -> dict[str, asyncpg.Record | Exception]:
        # One statement in the adapter's own transaction: its signals (the chains it
        # ended, the jobs it unblocked) leave after its commit (see after_commit).
        quiet = self._after_commit.bound
        sql = self._quiet_sql if quiet else self._sql
        if len(items) == 1:
            lease, output = items[0]
            row = await self._fetchrow(
                None, sql.complete_job, lease.job_id, lease.owner, lease.attempt, output
            )
            rows = [] if row is None else [row]
        else:
            rows = await self._fetch(
                None,
                sql.complete_jobs,
                [lease.job_id for lease, _ in items],
                [lease.owner for lease, _ in items],
                [lease.attempt for lease, _ in items],
                [output for _, output in items],
            )
        if quiet and rows:
            self._after_commit.send([s for row in rows for s in completion_signals(row)])
        return {row[0]: row for row in rows}

    async def continue_job(
        self, *, tx: PostgresTx | None, lease: Lease, next_job: NewJob
    ) -> JobRecord:
        if tx is None and next_job.concurrency_key is None:
            # Continuations running at the same time share one statement (see batching).
            self._check_not_holding()
            row = await self._continuations.submit((lease, next_job))
        else:
            row = await self._continue_one(tx, lease, next_job)
        if row is None:
            raise LeaseLostError(lease.job_id)
        return job_record(row)

    async def continue_locked_job(self, *, tx: PostgresTx, lease: Lease, next_job: NewJob) -> None:
        """As the port says; in a leased transaction of this adapter, the job-scheduled
        signal is sent after the commit (see :mod:`queuert_postgres.after_commit`)."""
        signals = self._after_commit.held(tx)
        if signals is None:
            await self.continue_job(tx=tx, lease=lease, next_job=next_job)
            return
        if await self._continue_one(tx, lease, next_job, quiet=True) is None:
            raise LeaseLostError(lease.job_id)
        signals.append(("scheduled", next_job.queue))

    async def _continue_one(
        self, tx: PostgresTx | None, lease: Lease, next_job: NewJob, *, quiet: bool = False
    ) -> asyncpg.Record | None:
        sql = self._quiet_sql if quiet else self._sql
        statement = sql.continue_job
        key: tuple[str, ...] = ()
        if next_job.concurrency_key is not None:
            # One statement on its own: atomic without a transaction around it.
            statement = keyed_job_statements(sql).continue_keyed_job
            key = (next_job.concurrency_key,)
        try:
            return await self._fetchrow(
                tx,
                statement,
                lease.job_id,
                lease.owner,
                lease.attempt,
                *new_job_args(next_job),
                *key,
            )
        except QueuertError as exc:
            cause = exc.__cause__
            if (
                isinstance(cause, asyncpg.UniqueViolationError)
                and cause.constraint_name == self._names.table_prefix + "jobs_chain_position_key"
            ):
                # The chain already has a job at that position: it moved on without us.
                raise LeaseLostError(
                    lease.job_id,
                    f"job {lease.job_id!r} cannot continue its chain {next_job.chain_id!r}: "
                    f"position {next_job.position} is already taken",
                ) from cause
            raise

    async def _continue_many(
        self, items: Sequence[tuple[Lease, NewJob]]
    ) -> dict[str, asyncpg.Record | Exception]:
        if len(items) > 1:
            try:
                columns = zip(*(continue_args(*item) for item in items), strict=True)
                rows = await self._fetch(None, self._sql.continue_jobs, *map(list, columns))
            except QueuertError as exc:
                if not isinstance(exc.__cause__, asyncpg.UniqueViolationError):
                    raise
                # One of them clashes: find out which by running each on its own.
            else:
                by_new_id = {row[0]: row for row in rows}
                return {
                    lease.job_id: by_new_id[job.id] for lease, job in items if job.id in by_new_id
                }
        results: dict[str, asyncpg.Record | Exception] = {}
        for lease, job in items:
            try:
                row = await self._continue_one(None, lease, job)
            except QueuertError as exc:
                results[lease.job_id] = exc
            else:
                if row is not None:
                    results[lease.job_id] = row
        return results

    async def reschedule_job(
        self,
        *,
        tx: PostgresTx | None,
        lease: Lease,
        error: JobError | None,
        delay_ms: int = 0,
        scheduled_at: datetime | None = None,
        refund_attempt: bool = False,
    ) -> JobRecord:
        row = await self._fetchrow(
            tx,
            self._sql.reschedule_job,
            lease.job_id,
            lease.owner,
            lease.attempt,
            scheduled_at,
            delay_ms,
            None if error is None else error.to_json(),
            1 if refund_attempt else 0,
        )
        if row is None:
            raise LeaseLostError(lease.job_id)
        return job_record(row)

    async def fail_job(self, *, tx: PostgresTx | None, lease: Lease, error: JobError) -> JobRecord:
        row = await self._fetchrow(
            tx, self._sql.fail_job, lease.job_id, lease.owner, lease.attempt, error.to_json()
        )
        if row is None:
            raise LeaseLostError(lease.job_id)
        return job_record(row)

    async def reap_expired_leases(self, *, tx: PostgresTx | None, limit: int) -> list[JobRecord]:
        if limit <= 0:
            return []
        rows = await self._fetch(tx, self._sql.reap_expired_leases, limit, _LEASE_EXPIRED_JSON)
        return [job_record(row) for row in rows]

    async def cancel_chain(self, *, tx: PostgresTx | None, chain_id: str) -> ChainRecord | None:
        row = await self._fetchrow(tx, self._sql.cancel_chain, chain_id)
        if row is None:
            # Either no such chain, or its last job was continued while we waited for
            # its lock (the new last job is newer than this statement's snapshot).
            return await self.get_chain(tx=tx, chain_id=chain_id)
        return chain_record(row)

    async def time_until_next_job(
        self, *, tx: PostgresTx | None, queues: Sequence[str]
    ) -> float | None:
        if not queues:
            return None
        row = await self._fetchrow(tx, self._sql.time_until_next_job, list(dict.fromkeys(queues)))
        if row is None or row[0] is None:
            return None
        return max(0.0, float(row[0]))
