"""A worker process killed with SIGKILL, during process or inside finalize, loses
nothing: once its lease expires another worker runs the job again, the killed
attempt counts as one with "lease expired" recorded, and the finalize's
application write commits exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

import queuert
from queuert import JobStatus
from queuert.records import LEASE_EXPIRED_ERROR
from tests.e2e.backends import Backend, schema_of
from tests.e2e.processes import (
    TWO_STEP,
    Mode,
    Step,
    WorkerGroup,
    expected_keys,
    register_handlers,
)

VICTIM_LEASE_MS = 1500
"""Short, so the test is quick; long enough that the victim, stuck in its job,
cannot reap its own lease before the test kills it."""


@pytest.mark.parametrize(
    ("mode", "line"),
    [("hang-in-process", "IN-PROCESS"), ("hang-in-finalize", "IN-FINALIZE")],
    ids=["killed-in-process", "killed-in-finalize"],
)
async def test_killed_worker_job_is_finished_once_by_another_after_lease_expiry(
    shared_backend: Backend, tmp_path: Path, mode: Mode, line: str
) -> None:
    assert shared_backend.url is not None
    app = queuert.Queuert(state=shared_backend.state, chains=[TWO_STEP])
    handles = await app.enqueue_job_chains(None, TWO_STEP, [Step(n) for n in range(3)])

    async with WorkerGroup(tmp_path) as group:
        victim = await group.spawn(
            name="victim",
            state=shared_backend.url,
            mode=mode,
            concurrency=1,
            lease_ms=VICTIM_LEASE_MS,
        )
        victim_job_id = await victim.expect(line)
        await victim.kill()

    # The killed attempt committed nothing: its finalize transaction died with it.
    assert await shared_backend.app_writes() == {}
    held = await app.get_job(victim_job_id)
    assert held is not None
    assert (held.status, held.attempt, held.leased_by) == (JobStatus.RUNNING, 1, "victim")

    rescuer = app.worker(concurrency=4, poll_interval=0.1, reaper_interval=0.1, worker_id="rescuer")
    register_handlers(rescuer, schema=schema_of(shared_backend.url))
    async with rescuer:
        outputs = [await app.wait_for_chain(h, timeout=30, poll_interval=0.05) for h in handles]

    assert [(o.n, o.steps) for o in outputs] == [(n, 2) for n in range(3)]
    job = await app.get_job(victim_job_id)
    assert job is not None
    assert job.status is JobStatus.COMPLETED
    assert job.attempt == 2, "the killed attempt counts"
    assert job.error == LEASE_EXPIRED_ERROR, "the killed attempt's error is kept"
    assert app.metrics.get("jobs.reaped") == 1

    writes = await shared_backend.app_writes()
    assert set(writes) == expected_keys(TWO_STEP, [h.id for h in handles])
    assert set(writes.values()) == {1}, f"application writes repeated: {writes}"
