"""An in-memory database: one shared connection, alive while the adapter is open."""

from __future__ import annotations

import pytest

from queuert.errors import ConfigurationError
from queuert.records import JobStatus
from queuert_sqlite import SqliteStateAdapter
from tests.sqlite.helpers import new_job


async def test_in_memory_database_runs_the_job_life_cycle() -> None:
    state = SqliteStateAdapter(":memory:")
    try:
        await state.migrate()
        await state.check_schema()
        async with state.transaction() as tx:
            await state.create_jobs(tx=tx, jobs=[new_job()])
        (job,) = await state.acquire_jobs(
            tx=None, queues=["q"], limit=5, owner="w", lease_ms=60_000
        )
        done = await state.complete_job(tx=None, lease=job.lease, output="1")
        assert done.status is JobStatus.COMPLETED
        chain = await state.get_chain(tx=None, chain_id=job.chain_id)
        assert chain is not None and chain.output == "1"
    finally:
        await state.close()


def test_in_memory_database_cannot_hand_out_other_connections() -> None:
    state = SqliteStateAdapter(":memory:")
    with pytest.raises(ConfigurationError, match="in-memory"):
        state.connect()
