"""Every log record the worker emits about a job says which job: its id, chain,
queue and attempt are attributes of the record, ready for structured logging."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

import queuert
from queuert import (
    ChainFailedError,
    Continuation,
    Job,
    JobContext,
    NonRetryableError,
    RetryPolicy,
)
from tests.e2e.backends import Backend
from tests.e2e.fixtures_inprocess import make_worker, open_app, wait_for_event

JOB_ATTRIBUTES = ("job_id", "chain_id", "queue", "attempt")


@dataclass
class Step:
    kind: str


@dataclass
class Out:
    kind: str


steps = queuert.chain(
    "e2e-logging",
    input=Step,
    output=Out,
    retry=RetryPolicy(max_attempts=3, initial_delay_ms=10, max_delay_ms=10, jitter=0),
)
tail = steps.queue("tail", input=Step)


async def test_every_job_log_record_names_its_job(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="queuert")
    stuck_started = asyncio.Event()
    rescheduled: set[str] = set()

    async with open_app(backend, [steps]) as app:
        worker = make_worker(app, lease_ms=300, reaper_interval=0.02, shutdown_timeout=0.1)

        @worker.handler(steps)
        async def handle(job: Job[Step], ctx: JobContext[Any, Out]) -> Out | Continuation:
            kind = job.input.kind
            if kind == "continue":
                return await ctx.continue_with(tail, Step("tail"))
            if kind == "flaky" and job.attempt == 1:
                raise RuntimeError("flaky failure")
            if kind == "fatal":
                raise NonRetryableError("fatal failure")
            if kind == "later" and job.id not in rescheduled:
                rescheduled.add(job.id)
                await ctx.reschedule(after=timedelta(milliseconds=10))
            if kind == "overrun" and job.attempt == 1:
                await asyncio.sleep(30)  # no heartbeat: the lease runs out
            if kind == "after-finalize":
                await ctx.complete(Out(kind))
                raise RuntimeError("raised after finalizing")
            if kind == "stuck":
                stuck_started.set()
                await ctx.with_heartbeat(asyncio.sleep(30), interval_ms=50)
            return Out(kind)

        @worker.handler(tail)
        async def handle_tail(job: Job[Step], ctx: JobContext[Any, Out]) -> Out:
            return Out(job.input.kind)

        kinds = ["continue", "flaky", "fatal", "later", "overrun", "after-finalize"]
        async with worker:
            handles = await app.enqueue_job_chains(None, steps, [Step(k) for k in kinds])
            for chain in handles:
                with contextlib.suppress(ChainFailedError):
                    await app.wait_for_chain(chain, timeout=5.0)
            stuck = await app.enqueue_job_chain(None, steps, Step("stuck"))
            await wait_for_event(stuck_started, what="the stuck job")
        # Leaving the block stopped the worker, which released the stuck job.

        jobs = (await app.list_jobs(limit=100)).items
    by_id = {job.id: job for job in jobs}
    assert stuck.id in by_id and len(by_id) == len(kinds) + 2

    about_jobs = [
        record
        for record in caplog.records
        if record.name.startswith("queuert")
        and any(job_id in record.getMessage() for job_id in by_id)
    ]
    for record in about_jobs:
        missing = [name for name in JOB_ATTRIBUTES if not hasattr(record, name)]
        assert not missing, f"{record.getMessage()!r} lacks {missing}"
        attrs = vars(record)
        job = by_id[attrs["job_id"]]
        assert attrs["job_id"] in record.getMessage()
        assert (attrs["chain_id"], attrs["queue"]) == (job.chain_id, job.queue)
        assert isinstance(attrs["attempt"], int) and 0 <= attrs["attempt"] <= job.attempt + 1

    # Records that carry a job id carry all of it, even when the message does not show it.
    for record in caplog.records:
        if hasattr(record, "job_id"):
            assert all(hasattr(record, name) for name in JOB_ATTRIBUTES)

    messages = " | ".join(record.getMessage() for record in about_jobs)
    for fragment in (
        "started",
        "finalized",
        "retry in",
        "failed for good",
        "rescheduled by its handler",
        "lease of job",
        "lost its lease",
        "raised after it was finalized",
        "released on stop",
    ):
        assert fragment in messages, f"no record about a job mentions {fragment!r}"
