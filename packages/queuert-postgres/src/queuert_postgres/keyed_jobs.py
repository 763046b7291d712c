"""Statements writing a job's concurrency key where the plain statements write none:
a continuation whose step declares a per-key limit (schema version 5's column).
"""

from __future__ import annotations

from functools import lru_cache

from queuert_postgres.statements import NOW, Statements, job_columns


class KeyedJobStatements:
    """SQL of keyed continuations over the tables of one :class:`Statements`."""

    def __init__(self, sql: Statements) -> None:
        jobs = sql.names.jobs
        lease = "id = $1 AND status = 'running' AND leased_by = $2 AND attempt = $3"
        # Statements.continue_job with the new job's concurrency key: $1..$14 as
        # there, $15 the key. Both writes in one statement; nothing is inserted when
        # the lease check fails.
        self.continue_keyed_job = sql._write(
            f"""
            INSERT INTO {jobs} (id, chain_id, chain_name, queue, position, status, input,
                attempt, max_attempts, priority, scheduled_at, created_at, updated_at,
                trace_context, concurrency_key)
            SELECT $4, $5, $6, $7, $8, 'pending', $9::json, 0, $10, $11,
                COALESCE($12::timestamptz, {NOW} + ($13::bigint * interval '1 millisecond')),
                {NOW}, {NOW}, $14, $15
            FROM old
            RETURNING {job_columns()}
            """,
            f"""
            old AS (
                UPDATE {jobs}
                SET status = 'completed', next_job_id = $4, leased_by = NULL,
                    leased_until = NULL, completed_at = {NOW}, updated_at = {NOW}
                WHERE {lease}
                RETURNING id
            )
            """,
            ends=False,
        )
        # $1 id, $2 key: a job just inserted without its key, in the inserting
        # transaction (a continuation written outside a worker).
        self.set_concurrency_key = f"UPDATE {jobs} SET concurrency_key = $2 WHERE id = $1"


@lru_cache(maxsize=64)
def keyed_job_statements(sql: Statements) -> KeyedJobStatements:
    """The keyed job statements of ``sql`` (built once per :class:`Statements`)."""
    return KeyedJobStatements(sql)
