"""The SQL the adapter runs, rendered once per table prefix.

Fixed statement texts let sqlite3's per-connection statement cache reuse the
prepared statements; variable-length lists are passed as one JSON array and
read with ``json_each`` for the same reason.
"""

from __future__ import annotations

from functools import lru_cache

JOB_COLUMNS = (
    "id, chain_id, chain_name, queue, position, status, input, attempt, max_attempts, "
    "priority, scheduled_at, created_at, updated_at, leased_by, leased_until, output, "
    "error, next_job_id, completed_at, trace_context, has_blockers"
)

JOB_COLUMN_COUNT = JOB_COLUMNS.count(",") + 1
"""How many columns :data:`JOB_COLUMNS` selects: a statement's own columns follow."""

MAX_MERGED_QUEUES = 32
"""Up to this many queues, acquisition reads each queue's index on its own and merges."""

# The lease guard shared by every lease-guarded operation (parameters: id, owner, attempt).
_GUARD = "id = ? AND status = 'running' AND leased_by = ? AND attempt = ?"


def unblocked_queues(prefix: str) -> str:
    """For RETURNING after the job columns of a write that completes a job of
    ``{prefix}jobs``: the JSON array of the queues of the jobs whose last blocker
    its chain is, read before the unblocking trigger runs (so those still blocked
    with one blocker left). Meaningless for a job that continued its chain: the
    reader ignores it then (SQLite reads no column of the updated row other than
    ``chain_id`` correctly here)."""
    jobs = f"{prefix}jobs"
    return (
        f"(SELECT json_group_array(DISTINCT d.queue) FROM {prefix}job_blockers AS b "
        f"JOIN {jobs} AS d ON d.id = b.job_id WHERE b.blocker_chain_id = {jobs}.chain_id "
        "AND d.status = 'blocked' AND d.blockers_left <= 1)"
    )


class Statements:
    """Statement texts over the tables ``{prefix}jobs`` and ``{prefix}migrations``."""

    def __init__(self, prefix: str) -> None:
        jobs = f"{prefix}jobs"
        self.jobs_table = jobs
        self.migrations_table = f"{prefix}migrations"
        c = JOB_COLUMNS

        self.create_migrations = (
            f"CREATE TABLE IF NOT EXISTS {self.migrations_table} ("
            "version INTEGER PRIMARY KEY NOT NULL, name TEXT NOT NULL, "
            "applied_at INTEGER NOT NULL)"
        )
        self.applied_versions = f"SELECT version FROM {self.migrations_table} ORDER BY version"
        self.record_migration = (
            f"INSERT INTO {self.migrations_table} (version, name, applied_at) VALUES (?, ?, ?)"
        )
        self.schema_version = f"SELECT MAX(version) FROM {self.migrations_table}"

        self.insert_job = (
            f"INSERT INTO {jobs} (id, chain_id, chain_name, queue, position, status, input, "
            "attempt, max_attempts, priority, scheduled_at, created_at, updated_at, "
            "trace_context) VALUES (?, ?, ?, ?, ?, 'pending', ?, 0, ?, ?, ?, ?, ?, ?)"
        )
        # The next job is inserted only while the lease of the job it continues holds, so a
        # lost lease or a second continuation (UNIQUE (chain_id, position)) writes nothing.
        self.insert_next_job = (
            f"INSERT INTO {jobs} (id, chain_id, chain_name, queue, position, status, input, "
            "attempt, max_attempts, priority, scheduled_at, created_at, updated_at, "
            "trace_context) SELECT ?, ?, ?, ?, ?, 'pending', ?, 0, ?, ?, ?, ?, ?, ? "
            f"FROM {jobs} WHERE {_GUARD} RETURNING {c}"
        )
        self.mark_continued = (
            f"UPDATE {jobs} SET status = 'completed', next_job_id = ?, leased_by = NULL, "
            f"leased_until = NULL, completed_at = ?, updated_at = ? WHERE {_GUARD}"
        )
        self.renew_lease = (
            f"UPDATE {jobs} SET leased_until = ?, updated_at = ? WHERE {_GUARD} "
            "RETURNING leased_until"
        )
        # A write that changes nothing: it takes the database write lock, which SQLite
        # holds until the transaction ends.
        self.lock_job = f"UPDATE {jobs} SET status = status WHERE {_GUARD} RETURNING {c}"
        # For a transaction that already holds the write lock (BEGIN IMMEDIATE).
        self.check_lease = f"SELECT {c} FROM {jobs} WHERE {_GUARD}"
        # The same, reading nothing: for a transaction that only needs the lease to hold.
        self.lease_held = f"SELECT 1 FROM {jobs} WHERE {_GUARD}"
        self.complete_job = (
            f"UPDATE {jobs} SET status = 'completed', output = ?, leased_by = NULL, "
            f"leased_until = NULL, completed_at = ?, updated_at = ? WHERE {_GUARD} "
            f"RETURNING {c}, {unblocked_queues(prefix)}"
        )
        self.reschedule_job = (
            f"UPDATE {jobs} SET status = 'pending', scheduled_at = ?, error = ?, "
            "attempt = attempt - ?, leased_by = NULL, leased_until = NULL, updated_at = ? "
            f"WHERE {_GUARD} RETURNING {c}"
        )
        self.fail_job = (
            f"UPDATE {jobs} SET status = 'failed', error = ?, leased_by = NULL, "
            f"leased_until = NULL, completed_at = ?, updated_at = ? WHERE {_GUARD} RETURNING {c}"
        )
        # Parameters: now (scheduled_at), now (completed_at), error, now (updated_at),
        # now (expiry cut-off), limit.
        self.reap = (
            f"UPDATE {jobs} SET "
            "status = CASE WHEN attempt >= max_attempts THEN 'failed' ELSE 'pending' END, "
            "scheduled_at = CASE WHEN attempt >= max_attempts THEN scheduled_at ELSE ? END, "
            "completed_at = CASE WHEN attempt >= max_attempts THEN ? ELSE NULL END, "
            "error = ?, leased_by = NULL, leased_until = NULL, updated_at = ? "
            f"WHERE id IN (SELECT id FROM {jobs} WHERE status = 'running' AND leased_until < ? "
            f"ORDER BY leased_until, id LIMIT ?) RETURNING {c}"
        )
        self.cancel_chain = (
            f"UPDATE {jobs} SET status = 'cancelled', completed_at = ?, updated_at = ? "
            "WHERE chain_id = ? AND next_job_id IS NULL AND status IN ('pending', 'blocked')"
        )
        # Per queue the minimum comes straight from the acquisition index.
        self.next_scheduled_at = (
            f"SELECT MIN((SELECT MIN(scheduled_at) FROM {jobs} "
            "WHERE status = 'pending' AND queue = q.value)) FROM json_each(?) AS q"
        )
        self.get_job = f"SELECT {c} FROM {jobs} WHERE id = ?"
        self.chain_select = (
            "SELECT f.id, f.chain_name, l.status, f.input, l.output, l.error, l.id, l.queue, "
            f"f.created_at, l.updated_at, l.completed_at, f.dedup_key FROM {jobs} AS l "
            f"JOIN {jobs} AS f ON f.id = l.chain_id WHERE l.next_job_id IS NULL"
        )
        self.get_chain = f"{self.chain_select} AND l.chain_id = ?"
        self.delete_chains = (
            f"DELETE FROM {jobs} WHERE chain_id IN (SELECT value FROM json_each(?)) "
            "RETURNING chain_id, id"
        )
        self._jobs = jobs

    def acquire(self, queue_count: int) -> str:
        """Lease statement for ``queue_count`` queues (at most
        :data:`MAX_MERGED_QUEUES`). Parameters: owner, leased_until, now, then
        (queue, now, limit) per queue, then limit."""
        return _acquire(self._jobs, queue_count)

    @property
    def acquire_any(self) -> str:
        """Lease statement for any number of queues, which sorts all their eligible
        jobs. Parameters: owner, leased_until, now, queues as a JSON array, now, limit."""
        return (
            f"UPDATE {self._jobs} SET status = 'running', attempt = attempt + 1, "
            "leased_by = ?, leased_until = ?, updated_at = ? WHERE id IN ("
            f"SELECT id FROM {self._jobs} WHERE status = 'pending' "
            "AND queue IN (SELECT value FROM json_each(?)) AND scheduled_at <= ? "
            f"ORDER BY scheduled_at, priority DESC, id LIMIT ?) RETURNING {JOB_COLUMNS}"
        )


@lru_cache(maxsize=256)
def _acquire(jobs: str, queue_count: int) -> str:
    order = "ORDER BY scheduled_at, priority DESC, id"
    per_queue = (
        f"SELECT id, scheduled_at, priority FROM {jobs} "
        f"WHERE status = 'pending' AND queue = ? AND scheduled_at <= ? {order} LIMIT ?"
    )
    if queue_count == 1:
        candidates = f"SELECT id FROM ({per_queue}) {order} LIMIT ?"
    else:
        # Each queue walks its own index range and stops at the limit; only those few
        # candidates are merged, however long the queues are.
        union = " UNION ALL ".join(f"SELECT * FROM ({per_queue})" for _ in range(queue_count))
        candidates = f"SELECT id FROM ({union}) {order} LIMIT ?"
    return (
        f"UPDATE {jobs} SET status = 'running', attempt = attempt + 1, leased_by = ?, "
        f"leased_until = ?, updated_at = ? WHERE id IN ({candidates}) RETURNING {JOB_COLUMNS}"
    )
