"""Rate limits (schema version 6): acquisition under a queue's rate, counted over a
sliding window of the adapter's clock (see :mod:`queuert.rates`).

The ``rate_starts`` table logs one row per job started under a rate: its queue,
key and start time (microseconds since the epoch). An acquisition counts a key's
rows within ``(now - window, now]``, leases at most the rest of the rate, logs
its starts and deletes the queue's rows that left the window in one
``BEGIN IMMEDIATE`` transaction: SQLite runs one writer at a time, so no two
acquisitions, in any processes, read the same counts.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Any

from queuert.rate_records import RateAcquisition
from queuert.records import JobRecord
from queuert_sqlite.clock import now_us
from queuert_sqlite.database import Database
from queuert_sqlite.rows import acquisition_order, job_from_row
from queuert_sqlite.statements import JOB_COLUMNS

_KEY = "CASE WHEN ?7 THEN coalesce(concurrency_key, '') ELSE '' END"


@lru_cache(maxsize=16)
def pick_under_rate(prefix: str) -> str:
    """Parameters: ?1 queue, ?2 limit, ?5 rate, ?7 per key (0 or 1), ?8 concurrency
    limit (NULL: none), ?9 the window's cutoff (us: starts after it count), ?10 now
    (us). Rows: the id and key of each job to lease, in acquisition order, then
    whether the rate held an eligible job back and the oldest start a held-back key
    counts (NULL: none); one row of NULL id and key when no job is to be leased.

    Each key's eligible jobs are ranked in acquisition order and only as many as both
    the key's window and its concurrency limit leave room for are candidates, so a
    key held back never holds back another key's jobs."""
    jobs = f"{prefix}jobs"
    order = "scheduled_at, priority DESC, id"
    return (
        "WITH used AS (SELECT rate_key AS k, count(*) AS n, min(started_at) AS oldest "
        f"FROM {prefix}rate_starts WHERE queue = ?1 AND started_at > ?9 GROUP BY 1), "
        f"running AS (SELECT {_KEY} AS k, count(*) AS n FROM {jobs} "
        "WHERE ?8 IS NOT NULL AND status = 'running' AND queue = ?1 AND leased_until > ?10 "
        "GROUP BY 1), "
        f"ranked AS (SELECT id, scheduled_at, priority, {_KEY} AS k, "
        f"row_number() OVER (PARTITION BY {_KEY} ORDER BY {order}) AS rn FROM {jobs} "
        "WHERE status = 'pending' AND queue = ?1 AND scheduled_at <= ?10), "
        "room AS (SELECT r.*, ?5 - coalesce(u.n, 0) AS rate_room, u.oldest, "
        "?8 - coalesce(c.n, 0) AS running_room FROM ranked AS r "
        "LEFT JOIN used AS u ON u.k = r.k LEFT JOIN running AS c ON c.k = r.k), "
        "picked AS (SELECT id, k, scheduled_at, priority FROM room "
        "WHERE rn <= rate_room AND (running_room IS NULL OR rn <= running_room) "
        f"ORDER BY {order} LIMIT ?2) "
        "SELECT p.id, p.k, m.held, m.oldest FROM (SELECT EXISTS "
        "(SELECT 1 FROM room WHERE rn > rate_room) AS held, "
        "(SELECT min(oldest) FROM room WHERE rn > rate_room) AS oldest) AS m "
        "LEFT JOIN picked AS p ON 1 ORDER BY p.scheduled_at, p.priority DESC, p.id"
    )


@lru_cache(maxsize=16)
def pick_under_queue_rate(prefix: str) -> str:
    """:func:`pick_under_rate` for a rate of the whole queue (``?7`` unused): no
    ranking of the backlog, only as many of its first eligible jobs as there is room
    for, and a probe at that offset for a job the rate holds back."""
    jobs = f"{prefix}jobs"
    order = "ORDER BY scheduled_at, priority DESC, id"
    eligible = f"FROM {jobs} WHERE status = 'pending' AND queue = ?1 AND scheduled_at <= ?10"
    return (
        "WITH used AS (SELECT count(*) AS n, min(started_at) AS oldest "
        f"FROM {prefix}rate_starts WHERE queue = ?1 AND rate_key = '' AND started_at > ?9), "
        "room AS (SELECT max(0, ?5 - (SELECT n FROM used)) AS rate_room, "
        "CASE WHEN ?8 IS NULL THEN ?2 ELSE max(0, ?8 - (SELECT count(*) "
        f"FROM {jobs} WHERE status = 'running' AND queue = ?1 AND leased_until > ?10)) "
        "END AS running_room), "
        f"picked AS (SELECT id, '' AS k, scheduled_at, priority {eligible} {order} "
        "LIMIT (SELECT min(?2, rate_room, running_room) FROM room)) "
        f"SELECT p.id, p.k, m.held, m.oldest FROM (SELECT EXISTS (SELECT 1 {eligible} "
        f"{order} LIMIT 1 OFFSET (SELECT rate_room FROM room)) AS held, "
        "(SELECT oldest FROM used) AS oldest) AS m "
        "LEFT JOIN picked AS p ON 1 ORDER BY p.scheduled_at, p.priority DESC, p.id"
    )


@lru_cache(maxsize=16)
def lease_picked(prefix: str) -> str:
    """Parameters: owner, leased_until, now (updated_at), the ids as a JSON array."""
    return (
        f"UPDATE {prefix}jobs SET status = 'running', attempt = attempt + 1, leased_by = ?, "
        "leased_until = ?, updated_at = ? WHERE status = 'pending' "
        f"AND id IN (SELECT value FROM json_each(?)) RETURNING {JOB_COLUMNS}"
    )


@lru_cache(maxsize=16)
def log_start(prefix: str) -> str:
    """Parameters: queue, key, start time (us)."""
    return f"INSERT INTO {prefix}rate_starts (queue, rate_key, started_at) VALUES (?, ?, ?)"


@lru_cache(maxsize=16)
def prune_starts(prefix: str) -> str:
    """Parameters: queue, the window's cutoff (us). Every key of the queue, so that
    keys no longer started leave no rows."""
    return f"DELETE FROM {prefix}rate_starts WHERE queue = ? AND started_at <= ?"


async def acquire(
    db: Database,
    conn: Any,
    prefix: str,
    *,
    queue: str,
    limit: int,
    owner: str,
    lease_ms: int,
    rate: int,
    window_ms: int,
    per_key: bool,
    concurrency_limit: int | None,
) -> RateAcquisition:
    """The acquisition inside ``conn``, a transaction holding the write lock."""
    # Read after the write lock is held, so that starts are logged in commit order.
    now = now_us()
    window_us = window_ms * 1000
    # A start counts while it lies within (now - window, now].
    cutoff = now - window_us
    picked = await db.run(
        conn,
        pick_under_rate(prefix) if per_key else pick_under_queue_rate(prefix),
        (
            queue,
            limit,
            None,
            None,
            rate,
            None,
            int(per_key),
            concurrency_limit,
            cutoff,
            now,
        ),
    )
    held_back = bool(picked[0][2])
    oldest = now if picked[0][3] is None else int(picked[0][3])
    keys = {row[0]: row[1] for row in picked if row[0] is not None}
    jobs: list[JobRecord] = []
    if keys:
        rows = await db.run(
            conn,
            lease_picked(prefix),
            (owner, now + lease_ms * 1000, now, json.dumps(list(keys))),
        )
        jobs = [job_from_row(row) for row in rows]
        jobs.sort(key=acquisition_order)
        await db.run_many(conn, log_start(prefix), [(queue, keys[job.id], now) for job in jobs])
        await db.run(conn, prune_starts(prefix), (queue, cutoff))
    # A held-back key gains room when the oldest start it counts leaves the window
    # (rounded up to a whole millisecond, so that it has left when the waiter looks).
    wait = max(0, math.ceil((oldest + window_us - now) / 1000)) if held_back else None
    return RateAcquisition(jobs, wait)
