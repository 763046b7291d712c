"""Statements of rate limits (schema version 6): acquisition under a queue's rate,
counted in fixed windows of the database's clock (see :mod:`queuert.rates`).

The ``rate_windows`` table holds, per queue and key, the start of the window last
counted in (milliseconds since the epoch) and how many jobs started within it.

Race-freedom: an acquisition under a rate first takes a transaction-scoped
advisory lock of its queue (:func:`rate_lock_key`), then, in a statement of its
own (so that its snapshot is taken after the lock is granted and sees every
earlier holder's commit), reads the window counts, leases only as many jobs per
key as the rate leaves room for, and adds them to the counts. Acquirers of one
rate-limited queue thus take turns for the length of one short statement;
other queues are not held up.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from queuert_postgres.names import Names
from queuert_postgres.statements import NOW, Statements, job_columns

LOCK = "SELECT pg_advisory_xact_lock($1::bigint)"
"""$1 the key of :func:`rate_lock_key`."""


def rate_lock_key(names: Names, queue: str) -> int:
    """The advisory lock key serialising acquisitions of ``queue`` under its rate in
    this schema and table prefix."""
    digest = hashlib.blake2b(
        f"queuert-rate:{names.schema}:{names.table_prefix}:{queue}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


def create_rate_windows(n: Names) -> list[str]:
    """Migration 6: the window counts of rate-limited queues."""
    return [
        f"""
        CREATE TABLE {n.table("rate_windows")} (
            queue text NOT NULL,
            rate_key text NOT NULL,
            window_start bigint NOT NULL,
            started integer NOT NULL,
            CONSTRAINT {n.name("rate_windows_pkey")} PRIMARY KEY (queue, rate_key)
        )
        """
    ]


class RateStatements:
    """SQL of rate limits over the tables of one :class:`Statements`."""

    def __init__(self, sql: Statements) -> None:
        jobs = sql.names.jobs
        windows = sql.names.table("rate_windows")
        key = "CASE WHEN $7::boolean THEN coalesce(concurrency_key, '') ELSE '' END"
        order = "scheduled_at, priority DESC, id"
        # $1 queue, $2 limit, $3 owner, $4 lease_ms, $5 rate, $6 window_ms, $7 per key,
        # $8 concurrency limit (NULL: none). Each key's eligible jobs are ranked in
        # acquisition order and only as many as both the key's window and its
        # concurrency limit leave room for are candidates, so a key held back never
        # holds back another key's jobs. The rows are the leased jobs (or one row of
        # NULL job columns when none was), each followed by whether the rate held an
        # eligible job back and the milliseconds until the next window opens.
        # The same parameters ($7 false) for a rate of the whole queue: no ranking of the
        # backlog, only as many of its first eligible jobs as there is room for, and a
        # probe at that offset for a job the rate holds back.
        self.acquire_under_queue_rate = f"""
            WITH clock AS (
                SELECT now_ms, now_ms / $6::bigint * $6::bigint AS window_start
                FROM (SELECT floor(extract(epoch FROM {NOW}) * 1000)::bigint AS now_ms) t
            ), room AS (
                SELECT greatest(0, $5::integer - coalesce((
                    SELECT w.started FROM {windows} w
                    WHERE w.queue = $1 AND w.rate_key = '' AND w.window_start >= clock.window_start
                ), 0)) AS rate_room,
                CASE WHEN $8::integer IS NULL THEN $2::integer ELSE greatest(0, $8::integer - (
                    SELECT count(*) FROM {jobs}
                    WHERE status = 'running' AND queue = $1 AND leased_until > {NOW}
                )::integer) END AS running_room
                FROM clock
            ), picked AS (
                SELECT id FROM {jobs}
                -- $7 is false here; named so that every parameter has a type.
                WHERE status = 'pending' AND queue = $1 AND scheduled_at <= {NOW}
                    AND NOT $7::boolean
                ORDER BY {order}
                LIMIT (SELECT least($2::integer, rate_room, running_room) FROM room)
                FOR UPDATE SKIP LOCKED
            ), leased AS (
                UPDATE {jobs} j
                SET status = 'running', attempt = j.attempt + 1, leased_by = $3,
                    leased_until = {NOW} + ($4::bigint * interval '1 millisecond'),
                    updated_at = {NOW}
                FROM picked
                WHERE j.id = picked.id
                RETURNING j.*
            ), counted AS (
                INSERT INTO {windows} AS w (queue, rate_key, window_start, started)
                SELECT $1, '', clock.window_start, count(*)
                FROM leased, clock GROUP BY clock.window_start
                ON CONFLICT (queue, rate_key) DO UPDATE SET
                    started = CASE WHEN w.window_start >= excluded.window_start
                        THEN w.started + excluded.started ELSE excluded.started END,
                    window_start = greatest(w.window_start, excluded.window_start)
            ), meta AS (
                SELECT EXISTS (
                    SELECT 1 FROM {jobs}
                    WHERE status = 'pending' AND queue = $1 AND scheduled_at <= {NOW}
                    ORDER BY {order}
                    OFFSET (SELECT rate_room FROM room) LIMIT 1
                ) AS held_back,
                    clock.window_start + $6::bigint - clock.now_ms AS next_window_ms
                FROM clock
            )
            SELECT {job_columns("l")}, m.held_back, m.next_window_ms
            FROM meta m LEFT JOIN leased l ON true
        """
        self.acquire_under_rate = f"""
            WITH clock AS (
                SELECT now_ms, now_ms / $6::bigint * $6::bigint AS window_start
                FROM (SELECT floor(extract(epoch FROM {NOW}) * 1000)::bigint AS now_ms) t
            ), used AS (
                SELECT w.rate_key AS k, w.started AS n FROM {windows} w, clock
                WHERE w.queue = $1 AND w.window_start >= clock.window_start
            ), running AS (
                SELECT {key} AS k, count(*) AS n FROM {jobs}
                WHERE $8::integer IS NOT NULL AND status = 'running' AND queue = $1
                    AND leased_until > {NOW}
                GROUP BY 1
            ), ranked AS (
                SELECT id, scheduled_at, priority, {key} AS k,
                    row_number() OVER (PARTITION BY {key} ORDER BY {order}) AS rn
                FROM {jobs}
                WHERE status = 'pending' AND queue = $1 AND scheduled_at <= {NOW}
            ), room AS (
                SELECT r.*, $5::integer - coalesce(u.n, 0) AS rate_room,
                    $8::integer - coalesce(c.n, 0) AS running_room
                FROM ranked r LEFT JOIN used u ON u.k = r.k LEFT JOIN running c ON c.k = r.k
            ), picked AS (
                SELECT id, k FROM room
                WHERE rn <= rate_room AND (running_room IS NULL OR rn <= running_room)
                ORDER BY scheduled_at, priority DESC, id
                LIMIT $2
            ), leased AS (
                UPDATE {jobs} j
                SET status = 'running', attempt = j.attempt + 1, leased_by = $3,
                    leased_until = {NOW} + ($4::bigint * interval '1 millisecond'),
                    updated_at = {NOW}
                FROM picked
                WHERE j.id = picked.id AND j.status = 'pending'
                RETURNING j.*, picked.k AS rate_key
            ), counted AS (
                INSERT INTO {windows} AS w (queue, rate_key, window_start, started)
                SELECT $1, l.rate_key, clock.window_start, count(*)
                FROM leased l, clock GROUP BY l.rate_key, clock.window_start
                ON CONFLICT (queue, rate_key) DO UPDATE SET
                    -- A window counted by a later clock reading is never reset backwards.
                    started = CASE WHEN w.window_start >= excluded.window_start
                        THEN w.started + excluded.started ELSE excluded.started END,
                    window_start = greatest(w.window_start, excluded.window_start)
            ), meta AS (
                SELECT EXISTS (SELECT 1 FROM room WHERE rn > rate_room) AS held_back,
                    clock.window_start + $6::bigint - clock.now_ms AS next_window_ms
                FROM clock
            )
            SELECT {job_columns("l")}, m.held_back, m.next_window_ms
            FROM meta m LEFT JOIN leased l ON true
        """


@lru_cache(maxsize=64)
def rate_statements(sql: Statements) -> RateStatements:
    """The rate statements of ``sql`` (built once per :class:`Statements`)."""
    return RateStatements(sql)
