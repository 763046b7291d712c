"""Deduplicated chain starts on PostgreSQL: the statements that take a key.

A key is taken with ``INSERT ... ON CONFLICT DO NOTHING`` on the key table's
primary key, in the transaction that inserts the chain's first job. A second
transaction taking the same key waits on the first one's index entry until it
ends, then finds the key (or inserts it, after a rollback); it then locks the
key's row and, in statements of their own that see every commit of the
holder's, checks whether the holder keeps the key or takes it over. Never two
chains for one key, whatever the number of processes.
"""

from __future__ import annotations

from queuert_postgres.names import Names
from queuert_postgres.statements import NOW


class DedupStatements:
    """The SQL of deduplicated chain starts for one schema and table prefix."""

    def __init__(self, names: Names, chain_cols: str, chain_from: str) -> None:
        jobs = names.jobs
        dedup = names.table("job_dedup")
        # $1 chain name, $2 key, $3 chain id: the key when nobody has it. A key being
        # taken by another transaction is waited for; nothing is returned when it exists.
        self.insert_key = (
            f"INSERT INTO {dedup} (chain_name, dedup_key, chain_id, taken_at) "
            f"VALUES ($1, $2, $3, {NOW}) ON CONFLICT (chain_name, dedup_key) DO NOTHING "
            "RETURNING chain_id"
        )
        # $1 chain name, $2 key: the holder, locked until the transaction ends. Run as
        # a statement of its own after insert_key, it sees the holder as committed.
        self.lock_key = (
            f"SELECT chain_id FROM {dedup} WHERE chain_name = $1 AND dedup_key = $2 FOR UPDATE"
        )
        # $1 chain name, $2 key, $3 scope, $4 window (ms) or NULL: whether the holder
        # keeps the key. A statement after lock_key's: its snapshot holds every commit
        # of the holder's.
        self.holds_key = (
            f"SELECT EXISTS (SELECT 1 FROM {dedup} AS d JOIN {jobs} AS l "
            "ON l.chain_id = d.chain_id AND l.next_job_id IS NULL "
            "WHERE d.chain_name = $1 AND d.dedup_key = $2 AND CASE $3::text "
            "WHEN 'incomplete' THEN l.status NOT IN ('completed', 'failed', 'cancelled') "
            f"ELSE $4::bigint IS NULL OR d.taken_at > {NOW} - $4::bigint * interval '1 ms' "
            "END)"
        )
        # $1 chain name, $2 key, $3 chain id: take over a key whose holder let it go.
        self.take_over_key = (
            f"UPDATE {dedup} SET chain_id = $3, taken_at = {NOW} "
            "WHERE chain_name = $1 AND dedup_key = $2"
        )
        self.mark_key = f"UPDATE {jobs} SET dedup_key = $2 WHERE id = $1"
        # $1 key, $2 after or NULL, $3 statuses or NULL, $4 chain names or NULL,
        # $5 created after or NULL, $6 created before or NULL, $7 limit, $8 queues of
        # the last jobs or NULL; oldest first, then newest first (the index on the key
        # finds the few chains holding it).
        self.list_chains = tuple(
            f"SELECT {chain_cols} FROM {chain_from} "
            "WHERE h.next_job_id IS NULL AND f.dedup_key = $1 "
            f"AND ($2::text IS NULL OR h.chain_id {'<' if newest else '>'} $2::text) "
            "AND ($3::text[] IS NULL OR h.status = ANY($3::text[])) "
            "AND ($4::text[] IS NULL OR h.chain_name = ANY($4::text[])) "
            "AND ($5::timestamptz IS NULL OR f.created_at > $5::timestamptz) "
            "AND ($6::timestamptz IS NULL OR f.created_at < $6::timestamptz) "
            "AND ($8::text[] IS NULL OR h.queue = ANY($8::text[])) "
            f"ORDER BY h.chain_id{' DESC' if newest else ''} LIMIT $7"
            for newest in (False, True)
        )
