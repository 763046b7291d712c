"""Statements of rate limits (schema version 6): acquisition under a queue's
rate, counted over a sliding window of the database's clock (see
:mod:`queuert.rates`).

The ``rate_starts`` table logs one row per job started under a rate: its queue,
key and the statement time it started at. An acquisition counts a key's rows
within ``(now - window, now]``, starts at most the rest of the rate, logs its
starts and deletes the queue's rows that left the window, all in one statement.

Race-freedom: an acquisition under a rate first takes a transaction-scoped
advisory lock of its queue (:func:`rate_lock_key`), then, in a statement of its
own (so that its snapshot is taken after the lock is granted and sees every
earlier holder's commit, and its clock reading is later than theirs), counts
the starts, leases only as many jobs per key as the rate leaves room for, and
logs them. Acquirers of one rate-limited queue thus take turns for the length
of one short statement; other queues are not held up.
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


def create_rate_starts(n: Names) -> list[str]:
    """Migration 6: the start log of rate-limited queues."""
    return [
        f"""
        CREATE TABLE {n.table("rate_starts")} (
            queue text NOT NULL,
            rate_key text NOT NULL,
            started_at timestamptz NOT NULL
        )
        """,
        f"CREATE INDEX {n.name('rate_starts_queue_key')} "
        f"ON {n.table('rate_starts')} (queue, rate_key, started_at)",
    ]


class RateStatements:
    """SQL of rate limits over the tables of one :class:`Statements`."""

    def __init__(self, sql: Statements) -> None:
        jobs = sql.names.jobs
        starts = sql.names.table("rate_starts")
        key = "CASE WHEN $7::boolean THEN coalesce(concurrency_key, '') ELSE '' END"
        order = "scheduled_at, priority DESC, id"
        # A start counts while it lies within (now - window, now]; the wait until a
        # held-back key gains room is until the oldest start it counts leaves (rounded
        # up to a whole millisecond, so that it has left when the waiter looks again).
        clock = f"""clock AS (
                SELECT {NOW} AS now, {NOW} - $6::bigint * interval '1 millisecond' AS cutoff
            )"""
        wait = (
            "greatest(0, ceil(extract(epoch FROM {oldest} + $6::bigint * interval "
            "'1 millisecond' - clock.now) * 1000))::bigint"
        )
        # $1 queue, $2 limit, $3 owner, $4 lease_ms, $5 rate, $6 window_ms, $7 per key,
        # $8 concurrency limit (NULL: none). Each key's eligible jobs are ranked in
        # acquisition order and only as many as both the key's window and its
        # concurrency limit leave room for are candidates, so a key held back never
        # holds back another key's jobs. The rows are the leased jobs (or one row of
        # NULL job columns when none was), each followed by whether the rate held an
        # eligible job back and the milliseconds until a held-back key gains room.
        # The same parameters ($7 false) for a rate of the whole queue: no ranking of the
        # backlog, only as many of its first eligible jobs as there is room for, and a
        # probe at that offset for a job the rate holds back.
        self.acquire_under_queue_rate = f"""
            WITH {clock}, used AS (
                SELECT count(*)::integer AS n, min(s.started_at) AS oldest
                FROM {starts} s, clock
                WHERE s.queue = $1 AND s.rate_key = '' AND s.started_at > clock.cutoff
            ), room AS (
                SELECT greatest(0, $5::integer - (SELECT n FROM used)) AS rate_room,
                CASE WHEN $8::integer IS NULL THEN $2::integer ELSE greatest(0, $8::integer - (
                    SELECT count(*) FROM {jobs}
                    WHERE status = 'running' AND queue = $1 AND leased_until > {NOW}
                )::integer) END AS running_room
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
                INSERT INTO {starts} (queue, rate_key, started_at)
                SELECT $1, '', clock.now FROM leased, clock
            ), pruned AS (
                DELETE FROM {starts} s USING clock
                WHERE s.queue = $1 AND s.started_at <= clock.cutoff
            ), meta AS (
                SELECT EXISTS (
                    SELECT 1 FROM {jobs}
                    WHERE status = 'pending' AND queue = $1 AND scheduled_at <= {NOW}
                    ORDER BY {order}
                    OFFSET (SELECT rate_room FROM room) LIMIT 1
                ) AS held_back,
                    {wait.format(oldest="coalesce(used.oldest, clock.now)")} AS next_window_ms
                FROM clock, used
            )
            SELECT {job_columns("l")}, m.held_back, m.next_window_ms
            FROM meta m LEFT JOIN leased l ON true
        """
        self.acquire_under_rate = f"""
            WITH {clock}, used AS (
                SELECT s.rate_key AS k, count(*) AS n, min(s.started_at) AS oldest
                FROM {starts} s, clock
                WHERE s.queue = $1 AND s.started_at > clock.cutoff
                GROUP BY s.rate_key
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
                    $8::integer - coalesce(c.n, 0) AS running_room, u.oldest
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
                INSERT INTO {starts} (queue, rate_key, started_at)
                SELECT $1, l.rate_key, clock.now FROM leased l, clock
            ), pruned AS (
                -- Every key of the queue, so that keys no longer started leave no rows.
                DELETE FROM {starts} s USING clock
                WHERE s.queue = $1 AND s.started_at <= clock.cutoff
            ), meta AS (
                SELECT EXISTS (SELECT 1 FROM room WHERE rn > rate_room) AS held_back,
                    {wait.format(oldest="coalesce(h.oldest, clock.now)")} AS next_window_ms
                FROM clock, (
                    SELECT min(coalesce(oldest, {NOW})) AS oldest FROM room
                    WHERE rn > rate_room
                ) h
            )
            SELECT {job_columns("l")}, m.held_back, m.next_window_ms
            FROM meta m LEFT JOIN leased l ON true
        """


@lru_cache(maxsize=64)
def rate_statements(sql: Statements) -> RateStatements:
    """The rate statements of ``sql`` (built once per :class:`Statements`)."""
    return RateStatements(sql)
