"""The PostgreSQL adapter's statements for control from outside a worker (revoke,
resume, settle, purge), worker records, counts and queue positions.

Writes that schedule a job or end a chain go through
``Statements._write``, so that with a bound notifier they carry their signals
like every other write of the adapter. Times are the server's
``statement_timestamp()``.
"""

from __future__ import annotations

from queuert_postgres.statements import NOW, Statements, job_columns, waiting_queues

_OPEN = "('pending', 'blocked', 'running')"


class ControlStatements:
    """SQL of the control operations for one :class:`Statements` (its names and
    signal channels)."""

    def __init__(self, sql: Statements) -> None:
        self.sql = sql
        names = sql.names
        jobs = names.jobs
        workers = names.table("workers")
        cols = job_columns()
        write = sql._write
        # $1 chain_id. The head is locked, so the status read is the committed one and
        # a finalizer of the head is waited for.
        self.chain_head = (
            f"SELECT id, status, leased_by, attempt FROM {jobs} "
            "WHERE chain_id = $1 AND next_job_id IS NULL FOR UPDATE"
        )
        # $1 id
        self.job_state = (
            f"SELECT id, status, leased_by, attempt FROM {jobs} WHERE id = $1 FOR UPDATE"
        )
        # $1 id
        self.cancel_job = write(
            f"""
            UPDATE {jobs} SET status = 'cancelled', leased_by = NULL, leased_until = NULL,
                completed_at = {NOW}, updated_at = {NOW}
            WHERE id = $1 AND status IN {_OPEN}
            RETURNING {cols}
            """,
            schedules=False,
        )
        # $1 id
        self.resume_job = write(
            f"""
            UPDATE {jobs} SET status = 'pending', attempt = 0, scheduled_at = {NOW},
                completed_at = NULL, leased_by = NULL, leased_until = NULL, updated_at = {NOW}
            WHERE id = $1 AND status IN ('failed', 'cancelled') AND next_job_id IS NULL
            RETURNING {cols}
            """,
            ends=False,
        )
        # $1 id, $2 output, $3 next_job_id
        self.settle_job = write(
            f"""
            UPDATE {jobs} SET status = 'completed', output = $2::json, next_job_id = $3,
                leased_by = NULL, leased_until = NULL, completed_at = {NOW}, updated_at = {NOW}
            WHERE id = $1 AND status IN {_OPEN}
            RETURNING {cols}, {waiting_queues(names, jobs)}
            """,
            schedules=False,
            unblocks=True,
        )
        # $1 id, $2 chain_id, $3 chain_name, $4 queue, $5 position, $6 input,
        # $7 max_attempts, $8 priority, $9 scheduled_at, $10 delay_ms, $11 trace_context
        self.insert_job = write(
            f"""
            INSERT INTO {jobs} (id, chain_id, chain_name, queue, position, status, input,
                attempt, max_attempts, priority, scheduled_at, created_at, updated_at,
                trace_context)
            VALUES ($1, $2, $3, $4, $5, 'pending', $6::json, 0, $7, $8,
                COALESCE($9::timestamptz, {NOW} + ($10::bigint * interval '1 millisecond')),
                {NOW}, {NOW}, $11)
            RETURNING {cols}
            """,
            ends=False,
        )
        # $1 statuses, $2 ended_before, $3 limit. Chains another purge is deleting are
        # skipped, not waited for.
        self.purge = f"""
            WITH doomed AS (
                SELECT chain_id FROM {jobs}
                WHERE next_job_id IS NULL AND completed_at IS NOT NULL
                  AND status = ANY($1::text[]) AND completed_at < $2
                ORDER BY completed_at
                LIMIT $3
                FOR UPDATE SKIP LOCKED
            ), deleted AS (
                DELETE FROM {jobs} WHERE chain_id IN (SELECT chain_id FROM doomed)
                RETURNING chain_id
            )
            SELECT count(DISTINCT chain_id) FROM deleted
        """
        # $1 id, $2 host, $3 pid, $4 queues, $5 concurrency, $6 purges, $7 forget_ms
        self.record_worker = f"""
            WITH recorded AS (
                INSERT INTO {workers} AS w (id, host, pid, queues, concurrency, purges,
                    started_at, last_seen_at)
                VALUES ($1, $2, $3, $4::text[], $5, $6, {NOW}, {NOW})
                ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid,
                    queues = excluded.queues, concurrency = excluded.concurrency,
                    purges = excluded.purges, last_seen_at = excluded.last_seen_at
                RETURNING 1
            ), forgotten AS (
                DELETE FROM {workers}
                WHERE id <> $1 AND last_seen_at < {NOW} - ($7::bigint * interval '1 millisecond')
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM recorded), (SELECT count(*) FROM forgotten)
        """
        self.remove_worker = f"DELETE FROM {workers} WHERE id = $1"
        self.list_workers = (
            "SELECT id, host, pid, queues, concurrency, purges, started_at, last_seen_at "
            f"FROM {workers} ORDER BY id"
        )
        # One row even when there are no jobs, for the time.
        self.count_jobs = f"""
            SELECT c.queue, c.status, c.n, c.oldest, {NOW}
            FROM (SELECT 1) AS one
            LEFT JOIN (
                SELECT queue, status, count(*) AS n,
                    min(scheduled_at) FILTER (WHERE status = 'pending') AS oldest
                FROM {jobs} GROUP BY queue, status
            ) c ON true
            ORDER BY c.queue, c.status
        """
        # $1 id
        self.queue_position = f"""
            SELECT {job_columns("j")}, {NOW},
                CASE WHEN j.status = 'pending' THEN (
                    SELECT count(*) FROM {jobs} o
                    WHERE o.status = 'pending' AND o.queue = j.queue
                      AND o.scheduled_at <= {NOW}
                      AND (o.scheduled_at, -o.priority, o.id) < (j.scheduled_at, -j.priority, j.id)
                ) ELSE 0 END
            FROM {jobs} j WHERE j.id = $1
        """
