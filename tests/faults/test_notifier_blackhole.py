"""The notifier's network turns into a black hole (half-open: connections stay
open, nothing is answered): starting chains does not hang, workers fall back to
polling and complete every chain exactly once, and notifications resume by
themselves once the network is back."""

from __future__ import annotations

import asyncio
import time

import pytest

from queuert import ChainHandle
from tests.e2e.processes import TWO_STEP, Done, Step
from tests.faults.setups import (
    SETUPS,
    Observed,
    Setup,
    assert_every_chain_completed_once,
    measured,
    start_worker,
)

pytestmark = pytest.mark.faults

POLL_S = 0.5
CHAINS = 10
ROUND_S = 30.0


@pytest.mark.parametrize("setup", SETUPS, indirect=True)
async def test_chains_complete_while_the_notifier_is_blackholed(setup: Setup) -> None:
    """A worker polling every 0.5 s; the notifier (LISTEN/NOTIFY or Redis)
    blackholed after a first round of chains, then restored.

    Bound: 10 chains started while the notifier is blackholed have all
    completed within 30 s of their start, and so have 10 chains started after
    the network is back (measured on 2 cores: 5.0 s, the notifier's answer
    timeout, then 0.5 s).
    """
    observed = Observed()
    producer = await setup.app([TWO_STEP])
    worker_app = await setup.app([TWO_STEP])
    worker = start_worker(worker_app, setup, observed, name="w", poll_interval=POLL_S)

    async def run_chains(first: int) -> list[str]:
        """Start CHAINS chains and wait until they all completed: within ROUND_S
        in all, or the test fails."""
        handles: list[ChainHandle[Done]] = []

        async def round_trip() -> None:
            handles.extend(
                await producer.enqueue_job_chains(
                    None, TWO_STEP, [Step(n) for n in range(first, first + CHAINS)]
                )
            )
            await asyncio.gather(
                *(
                    producer.wait_for_chain(handle, timeout=ROUND_S, poll_interval=0.1)
                    for handle in handles
                )
            )

        await observed.call(round_trip, timeout=ROUND_S)
        assert len(handles) == CHAINS, observed.queuert_errors
        return [h.id for h in handles]

    async with worker:
        started = await run_chains(0)
        setup.notify_proxy.blackhole()
        blackholed_at = time.monotonic()
        started += await run_chains(CHAINS)
        measured(f"{setup.name}: blackholed round", time.monotonic() - blackholed_at)
        setup.notify_proxy.restore()
        restored_at = time.monotonic()
        started += await run_chains(2 * CHAINS)
        measured(f"{setup.name}: restored round", time.monotonic() - restored_at)

    await assert_every_chain_completed_once(setup, observed, started)
