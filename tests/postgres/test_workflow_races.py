"""Blockers and deduplication on PostgreSQL beyond the conformance suite: the
conformance cases that need concurrent transactions fail against the bugs they
are aimed at (a missing share lock, a one-statement upsert)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from queuert.conformance.state.blockers import BlockerCases
from queuert.conformance.state.dedup import DedupCases
from queuert.records import DedupKey, NewJob
from queuert_postgres import PostgresStateAdapter
from queuert_postgres.blockers import BlockerStatements


async def test_without_the_share_lock_the_creation_race_case_fails(
    postgres_url: str, schema: str
) -> None:
    # The conformance case for this race is skipped on single-writer stores; shown
    # here to catch the bug it is aimed at on the adapter it guards.
    first = await PostgresStateAdapter.connect(postgres_url, schema=schema)
    second = await PostgresStateAdapter.connect(postgres_url, schema=schema)
    try:
        await first.migrate()
        unlocked = BlockerStatements(first._names)
        unlocked.lock_chain_heads = unlocked.lock_chain_heads.removesuffix(" FOR SHARE")
        assert unlocked.lock_chain_heads != first._blocker_sql.lock_chain_heads
        first._blocker_sql = unlocked
        with pytest.raises(AssertionError):
            await BlockerCases().test_a_blocker_completing_while_the_job_is_created_is_not_missed(
                first, second
            )
    finally:
        await first.close()
        await second.close()


class _OneStatementUpsert(PostgresStateAdapter):
    """Takes a key with one upsert whose condition reads the holder's jobs: under
    READ COMMITTED that read does not see a holder that committed while the upsert
    waited for it, so a second chain takes the key."""

    async def create_deduplicated_jobs(
        self,
        *,
        tx: Any,
        jobs: Sequence[NewJob],
        dedup: Sequence[DedupKey],
        blocker_chain_ids: Sequence[str] | None = None,
        run_on_blocker_failure: bool = False,
    ) -> list[str]:
        names = self._names
        take = (
            f"INSERT INTO {names.table('job_dedup')} AS d "
            "(chain_name, dedup_key, chain_id, taken_at) VALUES ($1, $2, $3, now()) "
            "ON CONFLICT (chain_name, dedup_key) DO UPDATE SET chain_id = EXCLUDED.chain_id "
            f"WHERE NOT EXISTS (SELECT 1 FROM {names.jobs} AS l WHERE l.chain_id = d.chain_id "
            "AND l.next_job_id IS NULL AND l.status NOT IN ('completed', 'failed', 'cancelled')) "
            "RETURNING chain_id"
        )
        holders = []
        async with self._atomic(tx) as conn:
            for job, request in zip(jobs, dedup, strict=True):
                row = await conn.fetchrow(take, job.chain_name, request.key, job.chain_id)
                if row is None:
                    holder = await conn.fetchval(
                        f"SELECT chain_id FROM {names.table('job_dedup')} "
                        "WHERE chain_name = $1 AND dedup_key = $2",
                        job.chain_name,
                        request.key,
                    )
                    holders.append(holder)
                    continue
                await self.create_jobs(tx=conn, jobs=[job])
                holders.append(job.chain_id)
        return holders


async def test_a_one_statement_upsert_fails_the_open_transaction_dedup_case(
    postgres_url: str, schema: str
) -> None:
    # The conformance case is skipped on single-writer stores; this is the bug it
    # is aimed at, on the adapter it guards.
    first = await _OneStatementUpsert.connect(postgres_url, schema=schema)
    second = await _OneStatementUpsert.connect(postgres_url, schema=schema)
    try:
        await first.migrate()
        with pytest.raises(AssertionError):
            await DedupCases().test_a_start_waits_for_an_open_transaction_holding_the_key(
                first, second
            )
    finally:
        await first.close()
        await second.close()
