"""PostgreSQL loses every connection in the middle of a run — the server restarts,
or an administrator terminates every backend — while chains are being started
and worked: every chain whose start was acknowledged completes, each finalize's
application write commits exactly once, application code sees only queuert
errors, and the same worker carries on by itself."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

import queuert
from tests.e2e.processes import TWO_STEP, Step
from tests.faults.setups import (
    POSTGRES_SETUPS,
    Observed,
    Setup,
    assert_every_chain_completed_once,
    measured,
    start_worker,
)
from tests.waiting import eventually

pytestmark = pytest.mark.faults

BATCH = 2
BATCH_INTERVAL_S = 0.1
"""20 chains a second: well within what the worker runs, so that a chain started
after the fault does not wait behind a backlog."""


async def run_through_fault(setup: Setup, fault: Callable[[], Awaitable[None]]) -> float:
    """Start chains continuously while one worker runs them, apply ``fault``, then
    keep going for a while. Returns how long after the fault ended a chain started
    then took to complete."""
    observed = Observed()
    producer = await setup.app([TWO_STEP])
    worker_app = await setup.app([TWO_STEP])
    worker = start_worker(worker_app, setup, observed, name="survivor")
    started: list[str] = []
    stop = asyncio.Event()

    async def produce() -> None:
        n = 0
        while not stop.is_set():
            inputs = [Step(n + i) for i in range(BATCH)]
            n += BATCH
            try:
                handles = await observed.call(
                    functools.partial(producer.enqueue_job_chains, None, TWO_STEP, inputs),
                    timeout=30,
                )
            except Exception:  # noted by observed; carry on as an application would
                handles = None
            started.extend(h.id for h in handles or [])
            await asyncio.sleep(BATCH_INTERVAL_S)

    async with worker:
        producing = asyncio.create_task(produce())
        try:
            await eventually(lambda: _completed_at_least(setup, 10), timeout=30, interval=0.05)
            await fault()
            recovered_at = time.monotonic()
            handle = None
            while handle is None:
                assert time.monotonic() - recovered_at < 30, "chains cannot be started again"
                handle = await observed.call(
                    lambda: producer.enqueue_job_chain(None, TWO_STEP, Step(-1)), timeout=30
                )
                if handle is None:
                    await asyncio.sleep(0.05)
            await observed.call(
                lambda: producer.wait_for_chain(handle, timeout=30, poll_interval=0.05),
                timeout=40,
            )
            resumed_s = time.monotonic() - recovered_at
            await asyncio.sleep(0.5)  # chains keep being started after the recovery
        finally:
            stop.set()
            await producing
        await assert_every_chain_completed_once(setup, observed, [*started, handle.id])
    return resumed_s


async def _completed_at_least(setup: Setup, count: int) -> bool:
    checker = queuert.Queuert(state=setup.backend.state, chains=[TWO_STEP])
    page = await checker.list_chains(status="completed", limit=count)
    return len(page.items) >= count


@pytest.mark.parametrize("setup", POSTGRES_SETUPS, indirect=True)
async def test_server_restart_mid_run(setup: Setup) -> None:
    """The server restarts while chains are started and worked: a clean restart
    (``pg_ctl stop -m fast``, which ends every session), then, 0.5 s of work
    later, a crash and restart (``-m immediate``).

    Bound: a chain started once the server is back completes within 10 s
    (measured on 2 cores: 0.1-0.7 s).
    """
    assert setup.cluster is not None
    cluster = setup.cluster

    async def restart_twice() -> None:
        await cluster.arestart(mode="fast")
        await asyncio.sleep(0.5)  # the work carries on between the two faults
        await cluster.arestart(mode="immediate")

    resumed_s = await run_through_fault(setup, restart_twice)
    measured(f"{setup.name}: a chain started after the restart completed in", resumed_s)


@pytest.mark.parametrize("setup", POSTGRES_SETUPS, indirect=True)
async def test_every_backend_terminated_mid_run(setup: Setup) -> None:
    """``pg_terminate_backend`` of every connection, three times 0.3 s apart,
    while chains are started and worked.

    Bound: a chain started after the last termination completes within 10 s
    (measured on 2 cores: 0.1-0.2 s).
    """
    assert setup.cluster is not None
    cluster = setup.cluster

    async def terminate_all() -> None:
        admin = await asyncpg.connect(cluster.url)
        try:
            for round in range(3):
                killed = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
                )
                assert killed or round, "no connection of the library was found to terminate"
                await asyncio.sleep(0.3)
        finally:
            await admin.close()

    resumed_s = await run_through_fault(setup, terminate_all)
    measured(f"{setup.name}: a chain started after the terminations completed in", resumed_s)
