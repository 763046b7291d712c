"""Blockers on PostgreSQL beyond the conformance suite: the share lock that keeps
a blocker chain from ending unseen while a job is made to wait on it."""

from __future__ import annotations

import pytest

from queuert.conformance.state.blockers import BlockerCases
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
