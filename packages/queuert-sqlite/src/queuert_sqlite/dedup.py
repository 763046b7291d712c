"""Deduplicated chain starts on SQLite: the statements that take a key.

A key is taken with an upsert on the key table's primary key in the write
transaction that inserts the chain's first job, so a second start of the key
finds it taken (and waits, on the database write lock, while it is being taken).
"""

from __future__ import annotations


class DedupStatements:
    """The SQL of deduplicated chain starts for one table prefix."""

    def __init__(self, prefix: str) -> None:
        jobs = f"{prefix}jobs"
        dedup = f"{prefix}job_dedup"
        # ?1 chain name, ?2 key, ?3 chain id, ?4 now, ?5 scope, ?6 window (µs) or NULL.
        # The key's row is taken, or taken over from a chain no longer in scope, in one
        # statement; nothing is returned when the holder keeps it.
        self.take_key = (
            f"INSERT INTO {dedup} (chain_name, dedup_key, chain_id, taken_at) "
            "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (chain_name, dedup_key) DO UPDATE "
            "SET chain_id = excluded.chain_id, taken_at = excluded.taken_at "
            f"WHERE NOT EXISTS (SELECT 1 FROM {jobs} AS l "
            f"WHERE l.chain_id = {dedup}.chain_id AND l.next_job_id IS NULL AND CASE ?5 "
            "WHEN 'incomplete' THEN l.status NOT IN ('completed', 'failed', 'cancelled') "
            f"ELSE ?6 IS NULL OR {dedup}.taken_at > ?4 - ?6 END) "
            "RETURNING chain_id"
        )
        self.holder = f"SELECT chain_id FROM {dedup} WHERE chain_name = ? AND dedup_key = ?"
        self.mark_key = f"UPDATE {jobs} SET dedup_key = ? WHERE id = ?"
