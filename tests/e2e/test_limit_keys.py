"""The concurrency key of a step declared with a per-key limit is computed from the
step's input and stored with each continuation, whether the handler continues
with ``ctx.continue_with`` or with ``enqueue_job`` inside its finalize."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import queuert
from queuert import EnqueueJob
from tests.e2e.backends import open_backend
from tests.waiting import eventually


@dataclass
class Order:
    n: int
    customer: str


ORDERS = queuert.chain("keyed-orders", input=Order, output=None)
SHIP = ORDERS.queue(
    "ship", input=Order, concurrency_limit=1, concurrency_key=lambda order: order.customer
)


@pytest.mark.parametrize("backend_name", ["memory", "sqlite", "postgres"])
async def test_continuations_carry_the_key_of_their_step(backend_name: str, tmp_path: Path) -> None:
    customers = ["a", "a", "a", "b", "b", "c"]
    async with open_backend(backend_name, tmp_path) as backend:
        app = queuert.Queuert(state=backend.state, chains=[ORDERS])
        worker = app.worker(concurrency=6, poll_interval=0.05)

        @worker.handler(ORDERS)
        async def take(job: queuert.Job[Order], ctx: queuert.JobContext[Any, None]) -> Any:
            if job.input.n % 2:
                return await ctx.continue_with(SHIP, job.input)

            async def commit(tx: Any, enqueue_job: EnqueueJob[None]) -> Any:
                return await enqueue_job(SHIP, job.input)

            return await ctx.finalize(commit)

        orders = [Order(n, customer) for n, customer in enumerate(customers)]
        async with worker:
            await app.enqueue_job_chains(None, ORDERS, orders)

            async def all_continued() -> bool:
                page = await app.list_jobs(queue=SHIP.name, limit=100)
                return len(page.items) == len(orders)

            await eventually(all_continued, timeout=30, message="orders not continued")
        # No worker runs the step: acquire it under its limit of one job per key.
        taken = await backend.state.acquire_limited_jobs(
            tx=None,
            queue=SHIP.name,
            limit=100,
            owner="probe",
            lease_ms=60_000,
            concurrency_limit=1,
            per_key=True,
        )
        codec = SHIP.input_codec
        assert sorted(codec.decode(job.input).customer for job in taken) == ["a", "b", "c"]


@pytest.mark.parametrize("backend_name", ["memory", "sqlite", "postgres"])
async def test_a_continuation_written_outside_a_worker_carries_its_key(
    backend_name: str, tmp_path: Path
) -> None:
    async with open_backend(backend_name, tmp_path) as backend:
        app = queuert.Queuert(state=backend.state, chains=[ORDERS])
        orders = [Order(0, "x"), Order(1, "y")]
        handles = await app.enqueue_job_chains(None, ORDERS, orders)
        for handle, order in zip(handles, orders, strict=True):
            await app.complete_job(None, handle.id, continue_with=(SHIP, order))
        taken = await backend.state.acquire_limited_jobs(
            tx=None,
            queue=SHIP.name,
            limit=100,
            owner="probe",
            lease_ms=60_000,
            concurrency_limit=1,
            per_key=True,
        )
        assert sorted(SHIP.input_codec.decode(job.input).customer for job in taken) == ["x", "y"]
