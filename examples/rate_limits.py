"""Global rate limits: ``python -m examples.rate_limits``.

- ``send-email`` starts at most 100 jobs a minute across every worker.
- ``customer-api`` starts at most 2 calls a second per customer; each customer
  has a window of its own, so a busy customer never holds back the others.
- ``export`` starts at most 10 jobs a second with at most 3 running at once, and
  continues with a ``notify`` step limited to 30 a minute per customer: the key
  of a continuation is computed from the step's input.

The demo runs on the in-memory adapter; the declarations are the same on SQLite or
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import queuert


@dataclass
class Email:
    to: str


@dataclass
class ApiCall:
    customer_id: str
    n: int


@dataclass
class Export:
    customer_id: str


@dataclass
class Notice:
    customer_id: str


# --8<-- [start:rates]
# At most 100 emails a minute, whatever the number of workers.
email = queuert.chain("send-email", input=Email, output=None, rate_limit="100/min")

# At most 2 calls a second per customer; every customer has windows of its own.
api = queuert.chain(
    "customer-api",
    input=ApiCall,
    output=None,
    rate_limit="2/s",
    concurrency_key=lambda call: call.customer_id,
)

# A rate and a concurrency limit together: at most 10 starts a second, 3 at once.
export = queuert.chain("export", input=Export, output=None, rate_limit="10/s", concurrency_limit=3)

# A later step, per key too: its key is computed from the step's input.
notify = export.queue(
    "notify",
    input=Notice,
    rate_limit="30/min",
    concurrency_key=lambda notice: notice.customer_id,
)
# --8<-- [end:rates]


async def new_app() -> queuert.Queuert[Any]:
    state = queuert.MemoryStateAdapter()
    await state.migrate()
    return queuert.Queuert(
        state=state, notify=queuert.InProcessNotifyAdapter(), chains=[email, api, export]
    )


def register_api_handler(worker: queuert.Worker[Any], starts: dict[str, list[float]]) -> None:
    """The ``customer-api`` handler: records when each customer's calls start."""

    @worker.handler(api)
    async def call(job: queuert.Job[ApiCall], ctx: queuert.JobContext[Any, None]) -> None:
        starts.setdefault(job.input.customer_id, []).append(time.time())
        return await ctx.complete(None)


async def demo() -> None:
    app = await new_app()
    try:
        starts: dict[str, list[float]] = {}
        worker = app.worker(concurrency=10)
        register_api_handler(worker, starts)
        calls = [ApiCall(customer, n) for n in range(4) for customer in ("alice", "bob")]
        began = time.time()
        async with worker:
            handles = await app.enqueue_job_chains(None, api, calls)
            for handle in handles:
                await app.wait_for_chain(handle, timeout=30)
        for customer, times in sorted(starts.items()):
            offsets = ", ".join(f"{t - began:.1f}" for t in times)
            print(f"{customer}: calls started at {offsets} s")
    finally:
        await app.close()


def main() -> None:
    asyncio.run(demo())


if __name__ == "__main__":
    main()
