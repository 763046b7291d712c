"""A two-step chain runs to completion on every backend, with the application's
write committed once per finalize."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import queuert
from tests.e2e.backends import Backend


@dataclass
class Start:
    n: int


@dataclass
class Double:
    n: int


@dataclass
class Result:
    total: int


chain = queuert.chain("smoke", input=Start, output=Result)
double = chain.queue("double", input=Double)


async def test_two_step_chain_completes_with_app_writes(backend: Backend) -> None:
    app = queuert.Queuert(
        state=backend.state, notify=queuert.InProcessNotifyAdapter(), chains=[chain]
    )
    worker = app.worker(concurrency=4, poll_interval=0.2)

    @worker.handler(chain)
    async def first(job: queuert.Job[Start], ctx: queuert.JobContext[Any, Result]) -> Any:
        async def commit(tx: Any, enqueue_job: queuert.EnqueueJob[Result]) -> Any:
            await backend.app_write(tx, f"first-{job.input.n}")
            return await enqueue_job(double, Double(job.input.n * 2))

        return await ctx.finalize(commit)

    @worker.handler(double)
    async def second(job: queuert.Job[Double], ctx: queuert.JobContext[Any, Result]) -> Any:
        async def commit(tx: Any, enqueue_job: queuert.EnqueueJob[Result]) -> Result:
            await backend.app_write(tx, f"second-{job.input.n}")
            return Result(job.input.n + 1)

        return await ctx.finalize(commit)

    async with worker:
        handles = await app.enqueue_job_chains(None, chain, [Start(i) for i in range(5)])
        outputs = [await app.wait_for_chain(h, timeout=30) for h in handles]

    assert [o.total for o in outputs] == [2 * i + 1 for i in range(5)]
    writes = await backend.app_writes()
    assert writes == {
        **{f"first-{i}": 1 for i in range(5)},
        **{f"second-{2 * i}": 1 for i in range(5)},
    }
    first_job = await app.get_job(handles[0].id)
    assert first_job is not None and first_job.continued
    chain_record = await app.get_chain(handles[0].id)
    assert chain_record is not None and chain_record.status is queuert.JobStatus.COMPLETED
