"""The chains every queuert benchmark runs, and their handlers.

Defined at module level so that worker processes started by the benchmarks
register the very same chains.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import queuert
from benchmarks.probe import Probe
from queuert import ChainDef, Continuation, EnqueueJob, Job, JobContext, Worker


@dataclass
class Item:
    i: int


@dataclass
class Stamped:
    """An input that carries the ``time.monotonic()`` at which its enqueue began
    (one clock for every process of the machine)."""

    i: int
    t: float


@dataclass
class Done:
    ok: bool


DONE = Done(ok=True)

one_step = queuert.chain("bench-one", input=Item, output=Done)
"""One-job chains with a no-op handler."""

phases = queuert.chain("bench-phases", input=Item, output=Done)
"""One-job chains whose handler runs a claim callback and a finalize callback."""

three_step = queuert.chain("bench-three", input=Item, output=Done)
three_second = three_step.queue("second", input=Item)
three_third = three_step.queue("third", input=Item)

stamped = queuert.chain("bench-stamped", input=Stamped, output=Done)
"""One-job chains whose handler records how long after its enqueue it started."""

LIMIT_KEYS = 100

limited = queuert.chain("bench-limited", input=Item, output=Done, concurrency_limit=10)
"""One-job chains on a queue limited to 10 running jobs across every worker."""

keyed = queuert.chain(
    "bench-keyed",
    input=Item,
    output=Done,
    concurrency_limit=1,
    concurrency_key=lambda item: str(item.i % LIMIT_KEYS),
)
"""One-job chains spread over 100 keys, each limited to one running job."""

rated = queuert.chain("bench-rated", input=Item, output=Done, rate_limit="1000000/s")
"""One-job chains on a rate-limited queue whose rate is never reached: what counting
starts costs."""

ALL_CHAINS: list[ChainDef[Any, Any]] = [
    one_step,
    phases,
    three_step,
    stamped,
    limited,
    keyed,
    rated,
]

SCENARIOS: dict[str, ChainDef[Any, Any]] = {
    "one": one_step,
    "one-unqueued": one_step,
    "phases": phases,
    "three": three_step,
    "stamped": stamped,
    "limited": limited,
    "keyed": keyed,
    "rated": rated,
}
JOBS_PER_CHAIN = {
    "one": 1,
    "one-unqueued": 1,
    "phases": 1,
    "three": 3,
    "stamped": 1,
    "limited": 1,
    "keyed": 1,
    "rated": 1,
}


async def _read_nothing(tx: Any) -> None:
    return None


async def _commit_nothing(tx: Any, enqueue_job: EnqueueJob[Done]) -> Done:
    return DONE


def register(
    worker: Worker[Any],
    scenario: str,
    probe: Probe,
    on_latency: Callable[[float], None] | None = None,
) -> None:
    """Register the handlers of ``scenario`` ("one", "one-unqueued", "phases", "three",
    "stamped", "limited", "keyed", "rated")."""
    if scenario in ("one", "one-unqueued"):

        @worker.handler(one_step)
        async def noop(job: Job[Item], ctx: JobContext[Any, Done]) -> Done:
            probe.started()
            return DONE

    elif scenario == "phases":

        @worker.handler(phases)
        async def claim_and_finalize(job: Job[Item], ctx: JobContext[Any, Done]) -> Done:
            probe.started()
            await ctx.claim(_read_nothing)
            result = await ctx.finalize(_commit_nothing)
            assert isinstance(result, Done)
            return result

    elif scenario == "three":

        @worker.handler(three_step)
        async def first(job: Job[Item], ctx: JobContext[Any, Done]) -> Continuation:
            probe.started()
            return await ctx.continue_with(three_second, job.input)

        @worker.handler(three_second)
        async def second(job: Job[Item], ctx: JobContext[Any, Done]) -> Continuation:
            return await ctx.continue_with(three_third, job.input)

        @worker.handler(three_third)
        async def third(job: Job[Item], ctx: JobContext[Any, Done]) -> Done:
            return DONE

    elif scenario == "stamped":
        record = on_latency or (lambda _seconds: None)

        @worker.handler(stamped)
        async def timed(job: Job[Stamped], ctx: JobContext[Any, Done]) -> Done:
            record(time.monotonic() - job.input.t)
            probe.started()
            return DONE

    elif scenario in ("limited", "keyed", "rated"):

        @worker.handler(SCENARIOS[scenario])
        async def limited_noop(job: Job[Item], ctx: JobContext[Any, Done]) -> Done:
            probe.started()
            return DONE

    else:
        raise ValueError(f"unknown scenario {scenario!r}")
