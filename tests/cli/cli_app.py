"""The application the ``queuert`` command tests name with ``--app``: a chain whose
first step sleeps for its input's seconds (so that a test can stop a worker while
it runs), and an external approval step."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import queuert


@dataclass
class Chore:
    name: str
    seconds: float = 0.0
    needs_approval: bool = False


@dataclass
class Approval:
    name: str


@dataclass
class Done:
    name: str


chores = queuert.chain("cli-chores", input=Chore, output=Done)
approval = chores.queue("approval", input=Approval, external=True)


async def make_worker() -> queuert.Worker[Any]:
    """The worker ``--app tests.cli.cli_app:make_worker`` finds; the store comes
    from ``QUEUERT_STATE_URL``."""
    app = await queuert.Queuert.from_url(chains=[chores])
    worker = app.worker(poll_interval=0.1, lease_ms=10_000)

    @worker.handler(chores)
    async def do(job: queuert.Job[Chore], ctx: queuert.JobContext[Any, Done]) -> Any:
        if job.input.seconds:
            await asyncio.sleep(job.input.seconds)
        if job.input.needs_approval:
            return await ctx.continue_with(approval, Approval(job.input.name))
        return Done(job.input.name)

    return worker
