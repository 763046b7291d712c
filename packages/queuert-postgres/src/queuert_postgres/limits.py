"""Statements of concurrency limits (schema version 5): jobs created with a
concurrency key, and acquisition under a queue's limit.

Race-freedom: an acquisition under a limit first takes a transaction-scoped
advisory lock of its queue (:func:`limit_lock_key`), then, in a statement of
its own (so that its snapshot is taken after the lock is granted and sees every
earlier holder's commit), counts the queue's running jobs with a valid lease and
leases only as many as the limit leaves room for. Acquirers of one limited
queue thus take turns for the length of one short statement; other queues and
unlimited acquisitions are not held up.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from queuert_postgres.names import Names
from queuert_postgres.statements import NOW, Statements, job_columns

LOCK = "SELECT pg_advisory_xact_lock($1::bigint)"
"""$1 the key of :func:`limit_lock_key`."""


def limit_lock_key(names: Names, queue: str) -> int:
    """The advisory lock key serialising acquisitions of ``queue`` under its limit in
    this schema and table prefix."""
    digest = hashlib.blake2b(
        f"queuert-limit:{names.schema}:{names.table_prefix}:{queue}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


class LimitStatements:
    """SQL of concurrency limits over the tables of one :class:`Statements`."""

    def __init__(self, sql: Statements) -> None:
        jobs = sql.names.jobs
        lease = (
            "status = 'running', attempt = j.attempt + 1, leased_by = $3, "
            f"leased_until = {NOW} + ($4::bigint * interval '1 millisecond'), "
            f"updated_at = {NOW}"
        )
        order = "scheduled_at, priority DESC, id"
        # Statements.create_jobs with the concurrency key: $1..$10 as there, $11 keys.
        self.create_keyed_jobs = sql._write(
            f"""
            INSERT INTO {jobs} (id, chain_id, chain_name, queue, position, status, input,
                attempt, max_attempts, priority, scheduled_at, created_at, updated_at,
                trace_context, concurrency_key)
            SELECT u.id, u.chain_id, u.chain_name, u.queue, u.position, 'pending',
                u.input::json, 0, u.max_attempts, u.priority,
                COALESCE(u.scheduled_at, {NOW} + (u.delay_ms * interval '1 millisecond')),
                {NOW}, {NOW}, u.trace_context, u.concurrency_key
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::integer[],
                $6::text[], $7::integer[], $8::integer[], $9::timestamptz[], $10::bigint[],
                $11::text[], $12::text[])
                AS u(id, chain_id, chain_name, queue, position, input, max_attempts, priority,
                     scheduled_at, delay_ms, trace_context, concurrency_key)
            RETURNING created_at, queue, status
            """,
            result="min(written.created_at)",
            ends=False,
        )
        slots = sql.names.table("schedule_slots")
        # $1 schedule, $2 slot_time, $3 chain_id: a row only when the slot is new.
        self.insert_schedule_slot = f"""
            INSERT INTO {slots} (schedule, slot_time, chain_id) VALUES ($1, $2, $3)
            ON CONFLICT DO NOTHING RETURNING chain_id
        """
        # $1 schedule
        self.last_schedule_slot = f"""
            SELECT schedule, slot_time, chain_id FROM {slots}
            WHERE schedule = $1 ORDER BY slot_time DESC LIMIT 1
        """
        # $1 chain_id
        self.chain_schedule_slot = f"""
            SELECT schedule, slot_time, chain_id FROM {slots} WHERE chain_id = $1 LIMIT 1
        """
        # $1 queue, $2 limit, $3 owner, $4 lease_ms, $5 concurrency limit.
        self.acquire_under_limit = f"""
            WITH room AS (
                SELECT greatest(0, least($2::integer, $5::integer - (
                    SELECT count(*) FROM {jobs}
                    WHERE status = 'running' AND queue = $1 AND leased_until > {NOW}
                )::integer)) AS n
            ), picked AS (
                SELECT id FROM {jobs}
                WHERE status = 'pending' AND queue = $1 AND scheduled_at <= {NOW}
                ORDER BY {order}
                LIMIT (SELECT n FROM room)
                FOR UPDATE SKIP LOCKED
            )
            UPDATE {jobs} j SET {lease}
            FROM picked
            WHERE j.id = picked.id
            RETURNING {job_columns("j")}
        """
        # The same parameters. Each key's eligible jobs are ranked in acquisition order
        # and only as many as the key has room for are candidates, so a full key never
        # holds back another key's jobs. Jobs without a key count as one key.
        self.acquire_under_key_limit = f"""
            WITH running AS (
                SELECT coalesce(concurrency_key, '') AS k, count(*) AS n FROM {jobs}
                WHERE status = 'running' AND queue = $1 AND leased_until > {NOW}
                GROUP BY 1
            ), ranked AS (
                SELECT id, scheduled_at, priority, coalesce(concurrency_key, '') AS k,
                    row_number() OVER (PARTITION BY coalesce(concurrency_key, '')
                                       ORDER BY {order}) AS rn
                FROM {jobs}
                WHERE status = 'pending' AND queue = $1 AND scheduled_at <= {NOW}
            ), picked AS (
                SELECT r.id FROM ranked r LEFT JOIN running u ON u.k = r.k
                WHERE r.rn <= $5::integer - coalesce(u.n, 0)
                ORDER BY r.scheduled_at, r.priority DESC, r.id
                LIMIT $2
            )
            UPDATE {jobs} j SET {lease}
            FROM picked
            WHERE j.id = picked.id AND j.status = 'pending'
            RETURNING {job_columns("j")}
        """


@lru_cache(maxsize=64)
def limit_statements(sql: Statements) -> LimitStatements:
    """The limit statements of ``sql`` (built once per :class:`Statements`)."""
    return LimitStatements(sql)
