"""Statements of concurrency limits: jobs created with a concurrency key (schema
version 5) and acquisition under a queue's limit (schema version 7).

Race-freedom: an acquisition under a limit first takes a transaction-scoped
advisory lock of its queue (:func:`limit_lock_key`), then counts the queue's
running jobs with a valid lease and leases only as many as the limit leaves
room for. The count must be read after the lock is granted, so that it sees
every earlier holder's commit: both steps run in the schema's function
``acquire_limited_jobs`` (:func:`acquire_function_steps`), a VOLATILE PL/pgSQL
function, whose every statement takes a snapshot of its own in READ COMMITTED.
One call is one round trip, and without a caller's transaction it is its own
transaction. Acquirers of one limited queue thus take turns for the length of
one short statement; other queues and unlimited acquisitions are not held up.

Per key, each pending job is checked against the first jobs of its own key
only (an index of keyed pending jobs), rather than ranking the queue's whole
backlog: the scan in acquisition order stops once enough jobs are found.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from queuert_postgres.names import Names
from queuert_postgres.statements import NOW, Statements, job_columns


def limit_lock_key(names: Names, queue: str) -> int:
    """The advisory lock key serialising acquisitions of ``queue`` under its limit in
    this schema and table prefix (the same key as schema version 5's two-statement
    acquisition, so that both serialise against each other during an upgrade)."""
    digest = hashlib.blake2b(
        f"queuert-limit:{names.schema}:{names.table_prefix}:{queue}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


def _candidates(jobs: str, key_test: str) -> str:
    """The first pending, eligible jobs of the queue ``p_queue`` whose key passes
    ``key_test`` (on alias ``p``; the count of running jobs on alias ``r``), as many
    as their key has room for under ``p_concurrency``."""
    running = key_test.replace("p.", "r.")
    return f"""
        SELECT p.id FROM {jobs} AS p
        WHERE p.status = 'pending' AND p.queue = p_queue AND {key_test}
            AND p.scheduled_at <= {NOW}
        ORDER BY p.scheduled_at, p.priority DESC, p.id
        LIMIT greatest(0, p_concurrency - (
            SELECT count(*) FROM {jobs} AS r
            WHERE r.status = 'running' AND r.queue = p_queue AND {running}
                AND r.leased_until > {NOW}
        ))"""


_ORDER = "x.scheduled_at, x.priority DESC, x.id"
"""Acquisition order of the candidate jobs (alias ``x``)."""
_LEASE = (
    "status = 'running', attempt = j.attempt + 1, leased_by = p_owner, "
    f"leased_until = {NOW} + (p_lease_ms * interval '1 millisecond'), "
    f"updated_at = {NOW}"
)
"""The acquisition function's lease of a job (alias ``j``)."""


def _queue_wide_acquisition(jobs: str) -> str:
    """The acquisition function's statement under a queue-wide limit: as many of the
    first pending jobs as the limit leaves room for."""
    return f"""
                RETURN QUERY
                WITH picked AS (
                    SELECT x.id FROM {jobs} AS x
                    WHERE x.status = 'pending' AND x.queue = p_queue
                        AND x.scheduled_at <= {NOW}
                    ORDER BY {_ORDER}
                    LIMIT greatest(0, least(p_limit, p_concurrency - (
                        SELECT count(*) FROM {jobs} AS r
                        WHERE r.status = 'running' AND r.queue = p_queue
                            AND r.leased_until > {NOW}
                    )::integer))
                    FOR UPDATE SKIP LOCKED
                )
                UPDATE {jobs} AS j SET {_LEASE}
                FROM picked WHERE j.id = picked.id
                RETURNING j.*;"""


def acquire_function_steps(n: Names) -> list[str]:
    """Schema version 7: the index of keyed pending jobs and the acquisition
    function. Released: a change is a new version that replaces the function."""
    jobs = n.jobs
    # Jobs without a key count as one group of their own; only keyed jobs are in
    # the new index, so that queues without per-key limits pay nothing for it.
    keyed = _candidates(
        jobs, "p.concurrency_key = x.concurrency_key AND p.concurrency_key IS NOT NULL"
    )
    unkeyed = _candidates(jobs, "p.concurrency_key IS NULL")
    return [
        f"""
        CREATE INDEX {n.name("jobs_limit_pending_idx")} ON {jobs}
            (queue, concurrency_key, scheduled_at, priority DESC, id)
            WHERE status = 'pending' AND concurrency_key IS NOT NULL
        """,
        f"""
        CREATE FUNCTION {n.table("acquire_limited_jobs")}(
            p_queue text, p_limit integer, p_owner text, p_lease_ms bigint,
            p_concurrency integer, p_per_key boolean, p_lock bigint
        ) RETURNS SETOF {jobs} LANGUAGE plpgsql VOLATILE AS $body$
        BEGIN
            -- Held until the transaction ends; the statements below take their
            -- snapshots after it is granted.
            PERFORM pg_advisory_xact_lock(p_lock);
            IF p_per_key THEN
                -- A job is a candidate when it is among the first of its key that
                -- the key has room for, so a full key never holds back another.
                RETURN QUERY
                WITH picked AS (
                    SELECT x.id FROM {jobs} AS x
                    WHERE x.status = 'pending' AND x.queue = p_queue
                        AND x.scheduled_at <= {NOW}
                        AND CASE WHEN x.concurrency_key IS NULL
                            THEN x.id IN ({unkeyed})
                            ELSE x.id IN ({keyed}) END
                    ORDER BY {_ORDER}
                    LIMIT p_limit
                    FOR UPDATE SKIP LOCKED
                )
                UPDATE {jobs} AS j SET {_LEASE}
                FROM picked WHERE j.id = picked.id
                RETURNING j.*;
            ELSE{_queue_wide_acquisition(jobs)}
            END IF;
        END
        $body$
        """,
    ]


def key_walk_steps(n: Names) -> list[str]:
    """Schema version 9: the acquisition function with a per-key acquisition whose
    cost does not grow with the backlog of full keys.

    Version 7 tested every pending job in acquisition order until enough were
    found: when the first keys of the backlog are full (a few busy keys with deep
    backlogs, or a worker holding most keys) it read the whole backlog on every
    call. Now the per-key branch first tests a window of the first backlog rows
    (as many as jobs wanted), skipping full keys through one hashed set, which
    finds enough when keys have room; when it comes short, it walks
    the distinct keys of the backlog through the index of keyed pending jobs
    (a skip scan: one index probe per key) and takes each key's first jobs that
    its room allows, oldest first across keys. Same arguments, results and lock
    as version 7."""
    jobs = n.jobs
    keyed = _candidates(
        jobs, "p.concurrency_key = x.concurrency_key AND p.concurrency_key IS NOT NULL"
    )
    unkeyed = _candidates(jobs, "p.concurrency_key IS NULL")
    running_of_key = (
        f"SELECT count(*) FROM {jobs} AS r WHERE r.status = 'running' "
        f"AND r.queue = p_queue AND r.concurrency_key = keys.k AND r.leased_until > {NOW}"
    )
    return [
        f"""
        CREATE OR REPLACE FUNCTION {n.table("acquire_limited_jobs")}(
            p_queue text, p_limit integer, p_owner text, p_lease_ms bigint,
            p_concurrency integer, p_per_key boolean, p_lock bigint
        ) RETURNS SETOF {jobs} LANGUAGE plpgsql VOLATILE AS $body$
        DECLARE
            got integer;
        BEGIN
            -- Held until the transaction ends; the statements below take their
            -- snapshots after it is granted.
            PERFORM pg_advisory_xact_lock(p_lock);
            IF NOT p_per_key THEN{_queue_wide_acquisition(jobs)}
                RETURN;
            END IF;
            -- The first backlog rows: a job is a candidate when it is among the
            -- first of its key that the key has room for; full keys are skipped
            -- through one set before that test.
            RETURN QUERY
            WITH full_keys AS (
                SELECT r.concurrency_key FROM {jobs} AS r
                WHERE r.status = 'running' AND r.queue = p_queue
                    AND r.concurrency_key IS NOT NULL AND r.leased_until > {NOW}
                GROUP BY r.concurrency_key HAVING count(*) >= p_concurrency
            ), window_rows AS (
                SELECT x.id FROM {jobs} AS x
                WHERE x.status = 'pending' AND x.queue = p_queue
                    AND x.scheduled_at <= {NOW}
                ORDER BY {_ORDER}
                LIMIT p_limit
            ), picked AS (
                SELECT x.id FROM window_rows AS w JOIN {jobs} AS x ON x.id = w.id
                WHERE x.status = 'pending'
                    AND (x.concurrency_key IS NULL
                        OR x.concurrency_key NOT IN (SELECT concurrency_key FROM full_keys))
                    AND CASE WHEN x.concurrency_key IS NULL
                        THEN x.id IN ({unkeyed})
                        ELSE x.id IN ({keyed}) END
                ORDER BY {_ORDER}
                LIMIT p_limit
                FOR UPDATE OF x SKIP LOCKED
            )
            UPDATE {jobs} AS j SET {_LEASE}
            FROM picked WHERE j.id = picked.id
            RETURNING j.*;
            GET DIAGNOSTICS got = ROW_COUNT;
            IF got >= p_limit THEN
                RETURN;
            END IF;
            -- Short: walk the distinct keys of the backlog (the jobs just leased
            -- count as running now) and take each key's first jobs within its
            -- room, plus the first jobs of the group without a key.
            RETURN QUERY
            WITH RECURSIVE keys(k) AS (
                (SELECT x.concurrency_key FROM {jobs} AS x
                 WHERE x.status = 'pending' AND x.queue = p_queue
                     AND x.concurrency_key IS NOT NULL
                 ORDER BY x.concurrency_key LIMIT 1)
                UNION ALL
                SELECT (SELECT x.concurrency_key FROM {jobs} AS x
                        WHERE x.status = 'pending' AND x.queue = p_queue
                            AND x.concurrency_key IS NOT NULL AND x.concurrency_key > keys.k
                        ORDER BY x.concurrency_key LIMIT 1)
                FROM keys WHERE keys.k IS NOT NULL
            ), candidates AS (
                SELECT c.id FROM keys CROSS JOIN LATERAL (
                    SELECT p.id FROM {jobs} AS p
                    WHERE p.status = 'pending' AND p.queue = p_queue
                        AND p.concurrency_key = keys.k AND p.scheduled_at <= {NOW}
                    ORDER BY p.scheduled_at, p.priority DESC, p.id
                    LIMIT greatest(0, p_concurrency - ({running_of_key}))
                ) AS c
                WHERE keys.k IS NOT NULL
                UNION ALL
                SELECT u.id FROM ({unkeyed}) AS u
            ), picked AS (
                SELECT x.id FROM candidates AS c JOIN {jobs} AS x ON x.id = c.id
                WHERE x.status = 'pending'
                ORDER BY {_ORDER}
                LIMIT p_limit - got
                FOR UPDATE OF x SKIP LOCKED
            )
            UPDATE {jobs} AS j SET {_LEASE}
            FROM picked WHERE j.id = picked.id
            RETURNING j.*;
        END
        $body$
        """,
    ]


class LimitStatements:
    """SQL of concurrency limits over the tables of one :class:`Statements`."""

    def __init__(self, sql: Statements) -> None:
        jobs = sql.names.jobs
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
        # $1 queue, $2 limit, $3 owner, $4 lease_ms, $5 concurrency limit, $6 per key,
        # $7 the queue's lock key (limit_lock_key).
        self.acquire = f"""
            SELECT {job_columns()}
            FROM {sql.names.table("acquire_limited_jobs")}($1, $2, $3, $4, $5, $6, $7)
        """


@lru_cache(maxsize=64)
def limit_statements(sql: Statements) -> LimitStatements:
    """The limit statements of ``sql`` (built once per :class:`Statements`)."""
    return LimitStatements(sql)
