"""Statements of concurrency limits and schedules (schema versions 5 and 7): jobs
created with a concurrency key, acquisition under a queue's limit, and schedule
slots.

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


def _ahead(jobs: str, key_test: str) -> str:
    """How many jobs of ``x``'s group (those passing ``key_test``, on aliases ``p`` and
    ``r``) are running with a valid lease or pending and eligible ahead of ``x``, at
    most the concurrency limit (?3). Only the group's first ?3 pending jobs are
    read, through an index, however long its backlog."""
    running = key_test.replace("p.", "r.")
    return (
        f"(SELECT count(*) FROM {jobs} AS r WHERE r.status = 'running' AND r.queue = ?1 "
        f"AND {running} AND r.leased_until > ?2) + "
        f"(SELECT count(*) FROM {jobs} AS f WHERE f.id IN ("
        f"SELECT p.id FROM {jobs} AS p WHERE p.status = 'pending' AND p.queue = ?1 "
        f"AND {key_test} AND p.scheduled_at <= ?2 {_ORDER} LIMIT ?3) "
        "AND (f.scheduled_at < x.scheduled_at OR (f.scheduled_at = x.scheduled_at "
        "AND (f.priority > x.priority OR (f.priority = x.priority AND f.id < x.id)))))"
    )


@lru_cache(maxsize=16)
def acquire_under_key_limit(jobs: str) -> str:
    """Parameters (numbered): ?1 queue, ?2 now, ?3 concurrency limit, ?4 limit,
    ?5 owner, ?6 leased_until.

    A job is a candidate when fewer than the limit of its key's jobs are running
    or ahead of it, so a full key never holds back another key's jobs. The scan
    in acquisition order stops once ?4 jobs are found, instead of ranking the
    queue's whole backlog. Jobs without a key count as one group of their own.

    Jobs of full keys (as many running as the limit) are skipped through one set
    of those keys, read once, before the per-job test: when the first keys of the
    backlog are full (a few busy keys with deep backlogs, or a worker holding most
    keys in its local queue) the scan passes their jobs at the cost of a lookup."""
    keyed = _ahead(jobs, "p.concurrency_key = x.concurrency_key AND p.concurrency_key IS NOT NULL")
    unkeyed = _ahead(jobs, "p.concurrency_key IS NULL")
    order = "ORDER BY x.scheduled_at, x.priority DESC, x.id"
    full_keys = (
        f"SELECT r.concurrency_key FROM {jobs} AS r WHERE r.status = 'running' "
        "AND r.queue = ?1 AND r.concurrency_key IS NOT NULL AND r.leased_until > ?2 "
        "GROUP BY r.concurrency_key HAVING count(*) >= ?3"
    )
    return (
        f"UPDATE {jobs} SET status = 'running', attempt = attempt + 1, leased_by = ?5, "
        "leased_until = ?6, updated_at = ?2 WHERE id IN ("
        f"SELECT x.id FROM {jobs} AS x WHERE x.status = 'pending' AND x.queue = ?1 "
        "AND x.scheduled_at <= ?2 AND (x.concurrency_key IS NULL "
        f"OR x.concurrency_key NOT IN ({full_keys})) "
        "AND CASE WHEN x.concurrency_key IS NULL "
        f"THEN {unkeyed} ELSE {keyed} END < ?3 {order} LIMIT ?4) RETURNING {JOB_COLUMNS}"
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
