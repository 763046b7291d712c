"""Blocked jobs on PostgreSQL: the statements of the blocker operations.

Unblocking and failing happen in a trigger of the jobs table (migration 3), in
the statement that ends a blocker chain, whichever operation ends it. Making a
job wait first takes a share lock on the last job of each blocker chain: a
chain cannot end while the waiting job's transaction is open, and a chain that
ended before is seen ended.
"""

from __future__ import annotations

from queuert_postgres.names import Names
from queuert_postgres.statements import NOW, job_columns


class BlockerStatements:
    """The SQL of the blocker operations for one schema and table prefix."""

    def __init__(self, names: Names) -> None:
        jobs = names.jobs
        blockers = names.table("job_blockers")
        # Locked in chain id order, so that two transactions locking overlapping
        # blockers cannot deadlock. A chain whose last job continued meanwhile is
        # missing from the result: it is read again (a new statement sees the new job).
        self.lock_chain_heads = (
            f"SELECT chain_id, status FROM {jobs} "
            "WHERE chain_id = ANY($1::text[]) AND next_job_id IS NULL "
            "ORDER BY chain_id FOR SHARE"
        )
        self.existing_chains = (
            f"SELECT DISTINCT chain_id FROM {jobs} WHERE chain_id = ANY($1::text[])"
        )
        self.insert_blockers = (
            f"INSERT INTO {blockers} (job_id, position, blocker_chain_id) "
            "SELECT j.id, b.ord - 1, b.chain_id "
            "FROM unnest($1::text[]) AS j(id) "
            "CROSS JOIN unnest($2::text[]) WITH ORDINALITY AS b(chain_id, ord)"
        )
        self.set_waiting = (
            f"UPDATE {jobs} SET status = $2, blockers_left = $3, error = $4::jsonb, "
            "run_on_blocker_failure = $5, has_blockers = true, "
            f"completed_at = CASE WHEN $2 = 'failed' THEN {NOW} END, updated_at = {NOW} "
            f"WHERE id = ANY($1::text[]) RETURNING {job_columns()}"
        )
        self.get_blockers = (
            "SELECT b.blocker_chain_id, l.chain_name, l.status, l.output::text "
            f"FROM {blockers} AS b JOIN {jobs} AS l "
            "ON l.chain_id = b.blocker_chain_id AND l.next_job_id IS NULL "
            "WHERE b.job_id = $1 ORDER BY b.position"
        )
        self.dependent_chains = (
            f"SELECT DISTINCT j.chain_id FROM {blockers} AS b JOIN {jobs} AS j "
            "ON j.id = b.job_id WHERE b.blocker_chain_id = ANY($1::text[]) "
            "AND NOT j.chain_id = ANY($1::text[]) ORDER BY j.chain_id"
        )
