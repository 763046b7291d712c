"""The chains and handlers of the OpenTelemetry tests: plain application code,
importing nothing of OpenTelemetry."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import queuert
from queuert import Continuation, EnqueueJob, Job, JobContext, RetryPolicy, Worker


@dataclass
class Step:
    n: int


@dataclass
class Done:
    n: int


TWO_STEP = queuert.chain("otel-two-step", input=Step, output=Done)
SECOND = TWO_STEP.queue("second", input=Step)
FAILING = queuert.chain(
    "otel-failing",
    input=Step,
    output=Done,
    retry=RetryPolicy(max_attempts=2, initial_delay_ms=1, max_delay_ms=1, jitter=0.0),
)
OVERRUN = queuert.chain("otel-overrun", input=Step, output=Done, retry=RetryPolicy(max_attempts=1))
CHAINS = [TWO_STEP, FAILING, OVERRUN]


class Boom(Exception):
    """The error the failing chain's handler raises."""


def register(worker: Worker[Any]) -> None:
    """The handlers: the first step claims, heartbeats and continues in its
    finalize; the second completes; the failing chain raises every time; the
    overrunning one works ``n`` milliseconds without a heartbeat, then completes."""

    @worker.handler(TWO_STEP)
    async def first(job: Job[Step], ctx: JobContext[Any, Done]) -> Done | Continuation:
        n = await ctx.claim(lambda tx: _read(job.input.n))
        await ctx.heartbeat()

        async def commit(tx: Any, enqueue_job: EnqueueJob[Done]) -> Done | Continuation:
            return await enqueue_job(SECOND, Step(n + 1))

        return await ctx.finalize(commit)

    @worker.handler(SECOND)
    async def second(job: Job[Step], ctx: JobContext[Any, Done]) -> Done | Continuation:
        async def commit(tx: Any, enqueue_job: EnqueueJob[Done]) -> Done | Continuation:
            return Done(job.input.n)

        return await ctx.finalize(commit)

    @worker.handler(FAILING)
    async def failing(job: Job[Step], ctx: JobContext[Any, Done]) -> Done:
        raise Boom(f"attempt {job.attempt} of {job.input.n} went wrong")

    @worker.handler(OVERRUN)
    async def overrun(job: Job[Step], ctx: JobContext[Any, Done]) -> Done:
        # Works past its lease without a heartbeat: the reaper takes the job back.
        await asyncio.sleep(job.input.n / 1000)
        return await ctx.complete(Done(job.input.n))


async def _read(n: int) -> int:
    return n
