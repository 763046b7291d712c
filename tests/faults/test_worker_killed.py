"""A worker process SIGKILLed in any phase of a job loses nothing: another
worker finishes every chain once the lease expires, and each finalize's
application write commits exactly once."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import queuert
from queuert import ChainHandle, JobStatus
from tests.e2e.processes import TWO_STEP, Done, Mode, Step, WorkerGroup, job_key
from tests.faults.setups import (
    SETUPS,
    Observed,
    Setup,
    assert_every_chain_completed_once,
    measured,
    start_worker,
)

pytestmark = pytest.mark.faults

VICTIM_LEASE_MS = 1500
"""Short, so the test is quick; long enough that the victim cannot reap its own
lease before it is killed."""

PHASES: list[tuple[Mode, str]] = [
    ("hang-in-claim", "IN-CLAIM"),
    ("hang-in-process", "IN-PROCESS"),
    ("hang-in-finalize", "IN-FINALIZE"),
    ("hang-after-finalize", "AFTER-FINALIZE"),
]


@pytest.mark.parametrize("setup", SETUPS, indirect=True)
@pytest.mark.parametrize(
    ("mode", "line"),
    PHASES,
    ids=["at-claim", "in-process", "inside-finalize-transaction", "after-finalize"],
)
async def test_chains_complete_once_after_a_worker_is_killed(
    setup: Setup, tmp_path: Path, mode: Mode, line: str
) -> None:
    """The victim is killed inside the claim transaction, in the process phase,
    inside the finalize transaction (after the application's write) or just after
    finalize committed. A rescuer worker (polling every 0.1 s, reaping every
    0.2 s) finishes every chain once the victim's 1.5 s lease expired.

    Bound: the rescuer has finished all chains within 5 s of the kill (measured
    on 2 cores: 1.6-1.7 s, the lease plus a reaper round; 0.1 s when the victim
    died after its finalize committed, as nothing is left to reap).
    """
    observed = Observed()
    producer = await setup.app([TWO_STEP])
    handles = await observed.call(
        lambda: producer.enqueue_job_chains(None, TWO_STEP, [Step(n) for n in range(3)])
    )
    assert handles is not None

    async with WorkerGroup(tmp_path) as group:
        victim = await group.spawn(
            name="victim",
            state=setup.state_url,
            notify=setup.notify_url,
            mode=mode,
            concurrency=1,
            lease_ms=VICTIM_LEASE_MS,
        )
        victim_job_id = await victim.expect(line)
        await victim.kill()
    killed_at = time.monotonic()

    held = await producer.get_job(victim_job_id)
    assert held is not None
    writes = await setup.backend.app_writes()
    if mode == "hang-after-finalize":
        assert held.status is JobStatus.COMPLETED
        assert writes == {job_key(held.chain_id, held.queue): 1}
    else:
        assert (held.status, held.attempt, held.leased_by) == (JobStatus.RUNNING, 1, "victim")
        assert writes == {}, "the killed attempt committed nothing"

    rescuer_app = await setup.app([TWO_STEP])
    rescuer = start_worker(rescuer_app, setup, observed, name="rescuer", poll_interval=0.1)
    async with rescuer:
        for handle in handles:
            await observed.call(_waiter(producer, handle), timeout=40)
        measured(
            f"{setup.name} {mode}: all chains done after the kill", time.monotonic() - killed_at
        )

    await assert_every_chain_completed_once(setup, observed, [h.id for h in handles])
    job = await producer.get_job(victim_job_id)
    assert job is not None and job.status is JobStatus.COMPLETED
    assert job.attempt == (1 if mode == "hang-after-finalize" else 2)


def _waiter(app: queuert.Queuert[Any], handle: ChainHandle[Done]) -> Callable[[], Awaitable[Done]]:
    return lambda: app.wait_for_chain(handle, timeout=30, poll_interval=0.05)
