"""Statements of concurrency limits and schedules (schema version 5): jobs created
with a concurrency key, acquisition under a queue's limit, and schedule slots.

SQLite runs one writer at a time and a write statement whose snapshot is stale
cannot commit, so counting the running jobs and leasing within the limit in one
``UPDATE`` is race-free between connections and processes.
"""

from __future__ import annotations

from functools import lru_cache

from queuert_sqlite.statements import JOB_COLUMNS

_ORDER = "ORDER BY scheduled_at, priority DESC, id"


@lru_cache(maxsize=16)
def insert_keyed_job(jobs: str) -> str:
    """Parameters: those of ``Statements.insert_job``, then the concurrency key."""
    return (
        f"INSERT INTO {jobs} (id, chain_id, chain_name, queue, position, status, input, "
        "attempt, max_attempts, priority, scheduled_at, created_at, updated_at, "
        "trace_context, concurrency_key) "
        "VALUES (?, ?, ?, ?, ?, 'pending', ?, 0, ?, ?, ?, ?, ?, ?, ?)"
    )


@lru_cache(maxsize=16)
def acquire_under_limit(jobs: str) -> str:
    """Parameters: owner, leased_until, now (updated_at), queue, now, limit,
    concurrency limit, queue, now (lease validity)."""
    running = (
        f"SELECT count(*) FROM {jobs} WHERE status = 'running' AND queue = ? AND leased_until > ?"
    )
    # A negative LIMIT means no limit in SQLite: clamp at zero.
    return (
        f"UPDATE {jobs} SET status = 'running', attempt = attempt + 1, leased_by = ?, "
        f"leased_until = ?, updated_at = ? WHERE id IN (SELECT id FROM {jobs} "
        f"WHERE status = 'pending' AND queue = ? AND scheduled_at <= ? {_ORDER} "
        f"LIMIT max(0, min(?, ? - ({running})))) RETURNING {JOB_COLUMNS}"
    )


@lru_cache(maxsize=16)
def acquire_under_key_limit(jobs: str) -> str:
    """Parameters: owner, leased_until, now (updated_at), queue, now (lease
    validity), queue, now, concurrency limit, limit.

    Each key's eligible jobs are ranked in acquisition order and only as many
    as the key has room for are candidates, so a full key never holds back
    another key's jobs."""
    return (
        f"UPDATE {jobs} SET status = 'running', attempt = attempt + 1, leased_by = ?, "
        "leased_until = ?, updated_at = ? WHERE id IN ("
        "WITH running AS (SELECT coalesce(concurrency_key, '') AS k, count(*) AS n "
        f"FROM {jobs} WHERE status = 'running' AND queue = ? AND leased_until > ? "
        "GROUP BY 1), "
        "ranked AS (SELECT id, scheduled_at, priority, coalesce(concurrency_key, '') AS k, "
        f"row_number() OVER (PARTITION BY coalesce(concurrency_key, '') {_ORDER}) AS rn "
        f"FROM {jobs} WHERE status = 'pending' AND queue = ? AND scheduled_at <= ?) "
        "SELECT r.id FROM ranked AS r LEFT JOIN running AS u ON u.k = r.k "
        "WHERE r.rn <= ? - coalesce(u.n, 0) "
        f"ORDER BY r.scheduled_at, r.priority DESC, r.id LIMIT ?) RETURNING {JOB_COLUMNS}"
    )


@lru_cache(maxsize=16)
def insert_schedule_slot(prefix: str) -> str:
    """Parameters: schedule, slot_time, chain_id, created_at. Returns a row only when
    the slot was not recorded yet."""
    return (
        f"INSERT INTO {prefix}schedule_slots (schedule, slot_time, chain_id, created_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING chain_id"
    )


@lru_cache(maxsize=16)
def last_schedule_slot(prefix: str) -> str:
    """Parameter: schedule."""
    return (
        f"SELECT schedule, slot_time, chain_id FROM {prefix}schedule_slots "
        "WHERE schedule = ? ORDER BY slot_time DESC LIMIT 1"
    )


@lru_cache(maxsize=16)
def chain_schedule_slot(prefix: str) -> str:
    """Parameter: chain_id."""
    return (
        f"SELECT schedule, slot_time, chain_id FROM {prefix}schedule_slots "
        "WHERE chain_id = ? LIMIT 1"
    )
