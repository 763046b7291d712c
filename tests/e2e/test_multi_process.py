"""Several worker processes share one store: every chain completes, no job is
finalized twice (the application's write of each job commits exactly once),
none is lost, and on PostgreSQL the work spreads over every worker."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import queuert
from queuert import ChainDef
from tests.e2e.backends import Backend, open_backend
from tests.e2e.processes import (
    THREE_STEP,
    TWO_STEP,
    Done,
    Step,
    WorkerGroup,
    WorkerProcess,
    chain_statuses,
    expected_keys,
    unfinished_chains,
)
from tests.waiting import eventually

pytestmark = pytest.mark.slow


async def run_chains(
    backend: Backend,
    tmp_path: Path,
    chain: ChainDef[Step, Done],
    chains: int,
    workers: int,
    *,
    notify: str | None,
    poll_interval: float,
    concurrency: int,
    timeout: float,
) -> list[WorkerProcess]:
    """Start ``workers`` processes, enqueue ``chains`` chains once all are ready,
    wait until none is left unfinished, and check every chain completed with each
    job's application write committed exactly once."""
    assert backend.url is not None
    app = queuert.Queuert(state=backend.state, chains=[chain])
    async with WorkerGroup(tmp_path) as group:
        processes = await group.spawn_ready(
            [f"w{i}" for i in range(workers)],
            state=backend.url,
            notify=notify,
            poll_interval=poll_interval,
            concurrency=concurrency,
        )
        start = time.monotonic()
        handles = await app.enqueue_job_chains(None, chain, [Step(n) for n in range(chains)])

        async def all_finished() -> bool:
            return not await unfinished_chains(app)

        await eventually(
            all_finished, timeout=timeout, interval=0.2, message=f"{chains} chains not finished"
        )
        elapsed = time.monotonic() - start
    print(f"{chains} {chain.name} chains on {workers} {backend.name} workers: {elapsed:.1f}s")

    assert await chain_statuses(app) == Counter({"completed": chains})
    writes = await backend.app_writes()
    expected = expected_keys(chain, [h.id for h in handles])
    assert set(writes) == expected, f"{len(expected - set(writes))} jobs lost"
    repeated = {key: count for key, count in writes.items() if count != 1}
    assert not repeated, f"jobs finalized more than once: {repeated}"
    return processes


async def test_two_processes_on_one_sqlite_file_complete_1000_chains(tmp_path: Path) -> None:
    async with open_backend("sqlite", tmp_path) as backend:
        await run_chains(
            backend,
            tmp_path,
            TWO_STEP,
            chains=1000,
            workers=2,
            notify=None,
            poll_interval=0.05,
            concurrency=8,
            timeout=120,
        )


async def test_four_processes_on_postgres_complete_2000_chains_spread_over_all(
    tmp_path: Path,
) -> None:
    async with open_backend("postgres", tmp_path) as backend:
        processes = await run_chains(
            backend,
            tmp_path,
            THREE_STEP,
            chains=2000,
            workers=4,
            notify=backend.url,
            poll_interval=1.0,
            concurrency=8,
            timeout=120,
        )

    shares: dict[str, Any] = {p.name: sum(p.finalized_jobs().values()) for p in processes}
    assert sum(shares.values()) == 2000 * 3, shares
    assert all(share > 0 for share in shares.values()), f"idle workers: {shares}"
